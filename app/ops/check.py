"""The database integrity check (SPEC 7, ``scpln db check``): is every stored plan whole and sound?

Owns what "healthy" means for a plan database:

- the database file itself: SQLite's ``PRAGMA integrity_check`` and ``PRAGMA foreign_key_check``
  (PostgreSQL enforces both on its own);
- every ``ready`` version is complete in each encoding its storage mode requires: PlanRepository rows
  with every level (``db``/``both``), the core artifacts (``files``/``both``);
- where both encodings exist they decode and hold the same documents (canonical text compared);
- the plan identities hold on the decoded content: the aggregate row balance, aggregate <-> detail
  conservation per (family, period), and the MRP row balance.

Decoding goes through the plan store and the codecs only; a failure to decode is reported as a
problem, never raised. The identities are computed column-wise with numpy, so a check stays linear in
the plan's size. The outcome of a whole-database check is recorded in ``app_settings`` (``last_check``)
for the ops page. This module never changes plan content.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from operator import itemgetter
from typing import Any

import numpy as np
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError

from app.errors import PlanNotFound
from app.ops.parallel import map_versions, store_for
from app.planning import documents as docs
from app.planning.model import CORE_ARTIFACTS, PSI_ARTIFACTS, PlanContent
from app.storage import codec_artifacts, digests, modes
from app.storage.codec_series import KNOWN_DOCUMENTS
from app.storage.db import get_engine, now_ms
from app.storage.plans import PlanStore
from app.storage.schema import plan_series, plan_versions
from app.storage.settings import get_value, set_value

LAST_CHECK = "last_check"
#: Tolerance of the plan identities: absolute, plus a relative part for large float quantities.
ABS_TOL = 1e-6
REL_TOL = 1e-9
#: The PlanRepository levels every version in ``db``/``both`` mode must have, and their documents.
REQUIRED_LEVELS = {
    "aggregate": "aggregate.json",
    "det": "sku_week.json",
    "mrp": "mrp.json",
    "mrp_final": "plan_final.json",
    "weekly_summary": "plan_final.json",
}
#: Levels that cannot be empty while another level has rows (one row per the same key, or per week).
_IMPLIED_BY = {
    "aggregate": ("det",),
    "det": ("aggregate",),
    "mrp": ("mrp_final",),
    "mrp_final": ("mrp", "weekly_summary"),
    "weekly_summary": ("mrp_final",),
}
#: How many example rows a violated identity names.
EXAMPLES = 3

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class Problem:
    """One finding. ``version_id`` is None for database-level problems; ``encoding`` says which
    encoding is at fault when it is one of them (``rows`` or ``artifacts``)."""

    version_id: str | None
    kind: str
    detail: str
    encoding: str | None = None

    def describe(self) -> str:
        where = self.version_id or "(database)"
        enc = f" [{self.encoding}]" if self.encoding else ""
        return f"{where}: {self.kind}{enc}: {self.detail}"


@dataclass
class CheckReport:
    """The outcome of a check: every problem found and how many versions were looked at."""

    problems: list[Problem] = field(default_factory=list)
    versions_checked: int = 0
    database_checked: bool = False
    at: int = field(default_factory=now_ms)

    @property
    def ok(self) -> bool:
        return not self.problems

    def for_version(self, version_id: str) -> list[Problem]:
        return [p for p in self.problems if p.version_id == version_id]

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "at": self.at,
            "versions_checked": self.versions_checked,
            "database_checked": self.database_checked,
            "problems": [asdict(p) for p in self.problems],
        }

    def as_text(self) -> str:
        scope = "database and " if self.database_checked else ""
        head = f"Checked {scope}{self.versions_checked} version(s): "
        if self.ok:
            return head + "OK, no problems found."
        lines = [head + f"{len(self.problems)} problem(s) found."]
        lines += [f"  - {p.describe()}" for p in self.problems]
        return "\n".join(lines)


def check_database(
    engine: Engine | None = None,
    version_id: str | None = None,
    progress: Progress | None = None,
    *,
    deep: bool = False,
    jobs: int | None = None,
    database_level: bool = True,
) -> CheckReport:
    """Check the whole database, or only ``version_id`` (then the database-level pragmas are skipped
    and nothing is recorded). Raises ``PlanNotFound`` for an unknown ``version_id``.

    Versions are checked in ``jobs`` processes (default: one per core, at most four) while SQLite's own
    integrity check runs in a thread beside them; ``deep`` decodes every version even when its certified
    digests match. ``database_level`` False leaves out SQLite's integrity and foreign-key checks (each
    reads the whole file) and checks the versions only."""
    engine = engine or get_engine()
    report = CheckReport()
    pragmas: dict[str, list[Problem]] = {}
    walker = None
    if version_id is None and database_level:
        report.database_checked = True
        walker = threading.Thread(
            target=lambda: pragmas.update(found=database_problems(engine)),
            name="scpln-db-pragmas",
        )
        walker.start()
    try:
        versions = _catalogue(engine, version_id)
    except PlanNotFound:
        raise
    except Exception as exc:  # a damaged catalogue is a finding too
        report.problems.append(Problem(None, "catalogue_unreadable", _short(exc)))
        versions = []
    ready = [v["version_id"] for v in versions if v["status"] == "ready"]
    check_one = functools.partial(_check_in_worker, deep=deep)
    for i, found in enumerate(map_versions(check_one, engine, ready, jobs)):
        if progress:
            progress(f"version {ready[i]}", int(100 * i / max(len(ready), 1)))
        report.problems += found
        report.versions_checked += 1
    if walker is not None:
        walker.join()
        report.problems[:0] = pragmas.get(
            "found", [Problem(None, "integrity_check", "the database-level check did not finish")]
        )
    if progress:
        progress("done", 100)
    if version_id is None:
        _record(engine, report)
    return report


def _check_in_worker(url: str, version_id: str, deep: bool = False) -> list[Problem]:
    """One version's problems, in a worker process (or here); a read that fails halfway is reported."""
    store = store_for(url)
    try:
        info = _catalogue(store.engine, version_id)[0]
        return check_version(store, info, deep=deep)
    except Exception as exc:
        return [Problem(version_id, "unreadable", _short(exc))]


def last_check(engine: Engine | None = None) -> dict[str, Any] | None:
    """The last whole-database check: ``{at, ok, problems, versions}``, or None when never run."""
    value = get_value(engine or get_engine(), LAST_CHECK)
    return json.loads(value) if value else None


# --- database level -----------------------------------------------------------------------------


def database_problems(engine: Engine) -> list[Problem]:
    """SQLite's own integrity and foreign-key checks (nothing to do on PostgreSQL, which enforces both)."""
    if engine.dialect.name != "sqlite":
        return []
    problems: list[Problem] = []
    with engine.connect() as conn:
        try:
            lines = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check").fetchall()]
        except Exception as exc:  # SQLite refuses to walk a badly damaged file at all
            lines = [f"integrity_check failed: {_short(exc)}"]
        if lines != ["ok"]:
            shown = "; ".join(lines[:10]) + (f"; … ({len(lines)} lines)" if len(lines) > 10 else "")
            problems.append(Problem(None, "integrity_check", shown))
        try:
            orphans = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        except Exception as exc:
            problems.append(Problem(None, "foreign_key", f"foreign_key_check could not run: {_short(exc)}"))
            orphans = []
        keyed: set[tuple[str, str]] = set()
        for table, rowid, parent, _fk in orphans:
            if rowid is None:  # a WITHOUT ROWID table (plan_series): named by version below
                keyed.add((table, parent))
                continue
            owner = _owner_of(conn, table, rowid)
            problems.append(
                Problem(owner, "foreign_key", f"{table} row {rowid} refers to a missing {parent} row")
            )
        for table, parent in sorted(keyed):
            problems += _orphan_versions(conn, table, parent)
    return problems


def _orphan_versions(conn: Any, table: str, parent: str) -> list[Problem]:
    """A problem per version whose rows in the keyed ``table`` have no ``parent`` row."""
    try:
        found = conn.exec_driver_sql(
            f'SELECT t.version_id, COUNT(*) FROM "{table}" t WHERE NOT EXISTS '
            f'(SELECT 1 FROM "{parent}" p WHERE p.version_id = t.version_id) GROUP BY t.version_id'
        ).all()
    except Exception as exc:  # noqa: BLE001 - the check reports what it cannot read
        return [Problem(None, "foreign_key", f"{table} rows refer to a missing {parent} row ({_short(exc)})")]
    return [
        Problem(owner, "foreign_key", f"{count} {table} row(s) of {owner} refer to a missing {parent} row")
        for owner, count in found
    ]


def _owner_of(conn: Any, table: str, rowid: int | None) -> str | None:
    """The ``version_id`` of an orphan row, when the table has one."""
    if rowid is None:
        return None
    try:
        return conn.exec_driver_sql(f'SELECT version_id FROM "{table}" WHERE rowid = ?', (rowid,)).scalar()
    except Exception:
        return None


# --- version level ------------------------------------------------------------------------------


def _catalogue(engine: Engine, version_id: str | None) -> list[dict[str, Any]]:
    query = (
        select(plan_versions.c.version_id, plan_versions.c.status, plan_versions.c.storage_mode)
        .add_columns(*digests.certification_columns())
        .select_from(digests.certification_join())
        .order_by(plan_versions.c.created_at, plan_versions.c.version_id)
    )
    if version_id is not None:
        query = query.where(plan_versions.c.version_id == version_id)
    try:
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
    except DBAPIError:
        # A damaged index must not hide the versions: read the table itself and order here.
        hint = " NOT INDEXED" if engine.dialect.name == "sqlite" else ""
        with engine.connect() as conn:
            found = conn.execute(
                text(
                    "SELECT version_id, status, storage_mode, rows_digest, artifacts_digest, created_at "
                    f"FROM plan_versions{hint}"
                )
            )
            rows = sorted((dict(r._mapping) for r in found), key=lambda r: (r["created_at"], r["version_id"]))
        if version_id is not None:
            rows = [r for r in rows if r["version_id"] == version_id]
    if version_id is not None and not rows:
        raise PlanNotFound(f"plan version {version_id!r} does not exist")
    return rows


def check_version(store: PlanStore, info: Mapping[str, Any], deep: bool = False) -> list[Problem]:
    """Every problem of one ready version (``info``: its catalogue row as :func:`_catalogue` reads it).

    Without ``deep``: a version certified at write generations that have not changed since is whole
    as certified — nothing of it is read. Otherwise an encoding whose generation is unchanged keeps its
    certified digest, the other is rehashed; a certified pair still matching both encodings (with PSI
    documents that agree) is whole without decoding. Anything else, or ``deep``, is decoded, compared
    and checked against the plan identities."""
    vid = info["version_id"]
    mode = info["storage_mode"] or "files"
    problems: list[Problem] = []
    certified = _certification(info)
    if not deep and _written_since_certified(certified, mode) is False:
        return problems

    def problem(kind: str, detail: str, encoding: str | None = None) -> None:
        problems.append(Problem(vid, kind, detail, encoding))

    levels = _level_counts(store.engine, vid)
    with store.engine.connect() as conn:  # as UTF-8 bytes: hashed as they are, decoded only if needed
        blobs = digests.stored_artifact_bytes(conn, vid)
    if modes.uses_rows(mode):
        if not levels:
            problem("missing_rows", f"storage mode {mode} but no PlanRepository rows", "rows")
        else:
            for detail in _level_gaps(levels, _meta_labels(store.engine, vid)):
                problem("missing_level", detail, "rows")
    if modes.uses_artifacts(mode):
        missing = [n for n in CORE_ARTIFACTS if n not in blobs]
        if missing:
            problem("missing_artifact", f"storage mode {mode} but no {', '.join(missing)}", "artifacts")
    if not deep and not problems and levels and blobs and _certified_pair_holds(store, certified, vid, blobs):
        return problems
    texts = {name: body.decode("utf-8") for name, body in blobs.items()}

    rows_content = None
    if levels:
        try:
            rows_content = store.read_rows(vid)
        except Exception as exc:
            problem("decode_error", f"PlanRepository rows do not decode: {_short(exc)}", "rows")
    rows_texts = (  # canonical texts of the rows' documents, needed only to compare with artifacts
        {n: docs.artifact_text(n, d) for n, d in rows_content.documents.items() if n in texts}
        if rows_content is not None and texts
        else {}
    )
    artifacts_content = None
    if texts:
        artifacts_content, errors = _decode_artifacts(vid, texts, rows_content, rows_texts)
        for detail in errors:
            problem("decode_error", detail, "artifacts")

    agree = True
    if rows_content is not None and artifacts_content is not None:
        for detail in compare_contents(rows_content, artifacts_content, texts, rows_texts):
            agree = False
            problem("encoding_mismatch", detail)
    checked = []
    if rows_content is not None:
        checked.append(("rows", rows_content))
    if artifacts_content is not None and (rows_content is None or not agree):
        checked.append(("artifacts", artifacts_content))
    for encoding, content in checked:
        label = encoding if len(checked) > 1 else None
        for kind, detail in identity_problems(content):
            problem(kind, detail, label)
    return problems


def _certification(info: Mapping[str, Any]) -> digests.Certification:
    return digests.Certification(
        info.get("rows_digest"), info.get("artifacts_digest"),
        info.get("certified_rows_generation"), info.get("certified_artifacts_generation"),
        info.get("rows_generation"), info.get("artifacts_generation"),
    )  # fmt: skip


def _written_since_certified(certified: digests.Certification, mode: str) -> bool:
    """False when neither encoding was written since the version was certified whole and the digests
    its mode needs are recorded (``both``: the pair; ``db``: the rows'; ``files``: the artifacts'),
    True otherwise. Only a writer that knew the version whole certifies it: a write of the plan store,
    a rollback repair, a backfill."""
    needed = {"both": ("rows", "artifacts"), "db": ("rows",), "files": ("artifacts",)}[mode]
    present = {"rows": certified.rows_digest, "artifacts": certified.artifacts_digest}
    return not (certified.unchanged and all(present[n] for n in needed))


def _certified_pair_holds(
    store: PlanStore, certified: digests.Certification, vid: str, blobs: Mapping[str, bytes]
) -> bool:
    """True when the version has a certified digest pair, both encodings still hash to it, and the
    PSI documents (which no digest covers) are the same in both. An encoding whose generation has not
    changed since its certification is not hashed again. ``blobs``: the stored artifacts as UTF-8
    bytes."""
    rows_digest, artifacts_digest = certified.rows_digest, certified.artifacts_digest
    if not rows_digest or not artifacts_digest:
        return False
    if not certified.artifacts_trusted and digests.artifacts_digest(blobs) != artifacts_digest:
        return False
    if not certified.rows_trusted and store.rows_digest_now(vid) != rows_digest:
        return False
    psi = store.read_psi_documents(vid)
    for name in PSI_ARTIFACTS:
        held = psi.get(name)
        if (held is None) != (name not in blobs):
            return False
        if held is not None and docs.artifact_text(name, held).encode("utf-8") != blobs[name]:
            return False
    return True


def _level_counts(engine: Engine, vid: str) -> dict[str, int]:
    query = text("SELECT level, COUNT(*) FROM plan_series WHERE version_id = :v GROUP BY level")
    with engine.connect() as conn:
        return {level: count for level, count in conn.execute(query, {"v": vid})}


def _meta_labels(engine: Engine, vid: str) -> set[str]:
    query = select(plan_series.c.label).where(plan_series.c.version_id == vid, plan_series.c.level == "meta")
    with engine.connect() as conn:
        return set(conn.execute(query).scalars())


def _level_gaps(counts: Mapping[str, int], documents: set[str]) -> list[str]:
    """Required levels that are absent. A level may be empty only when its document is stored (a meta
    row says so) and the plan has no such rows, which the levels it mirrors then confirm."""
    gaps = []
    for level, document in REQUIRED_LEVELS.items():
        if document not in documents:
            gaps.append(f"level {level}: {document} is not stored (no meta row)")
        elif not counts.get(level) and any(counts.get(other) for other in _IMPLIED_BY[level]):
            others = ", ".join(f"{o} has {counts[o]}" for o in _IMPLIED_BY[level] if counts.get(o))
            gaps.append(f"level {level} has no rows ({others})")
    if counts.get("mrp") and counts.get("mrp_final") and counts["mrp"] != counts["mrp_final"]:
        gaps.append(f"levels mrp and mrp_final differ in rows ({counts['mrp']} vs {counts['mrp_final']})")
    return gaps


def _decode_artifacts(
    vid: str, texts: Mapping[str, str], rows_content: PlanContent | None, rows_texts: Mapping[str, str]
) -> tuple[PlanContent | None, list[str]]:
    """The artifacts' content and one message per artifact that does not parse. An artifact whose text
    is the canonical text of the rows' document is that document (it parses to exactly it)."""
    documents: dict[str, Any] = {}
    errors = []
    for name, body in sorted(texts.items()):
        if name not in KNOWN_DOCUMENTS:
            continue
        if rows_content is not None and rows_texts.get(name) == body:
            documents[name] = rows_content.documents[name]
            continue
        try:
            documents[name] = codec_artifacts.decode(vid, {name: body}).documents[name]
        except ValueError as exc:
            errors.append(f"{name} does not parse: {_short(exc)}")
    if not documents:
        return None, errors
    return PlanContent(version_id=vid, params=_params(documents), documents=documents), errors


def _params(documents: Mapping[str, Any]) -> dict[str, Any]:
    head = documents.get("aggregate.json")
    params = head.get("params") if isinstance(head, dict) else None
    return dict(params) if isinstance(params, dict) else {}


def compare_contents(
    rows: PlanContent,
    artifacts: PlanContent,
    texts: Mapping[str, str],
    rows_texts: Mapping[str, str] | None = None,
) -> list[str]:
    """One message per document both encodings hold whose canonical text differs, naming the first
    differing table, row index and key. ``texts`` are the stored artifact texts; ``rows_texts`` the
    canonical texts of the rows' documents when already made."""
    out = []
    for name in sorted(set(rows.documents) & set(artifacts.documents)):
        a, b = rows.documents[name], artifacts.documents[name]
        left = (rows_texts or {}).get(name) or docs.artifact_text(name, a)
        if left == texts.get(name) or left == docs.artifact_text(name, b):
            continue
        out.append(f"{name}: rows and artifacts differ at {first_difference(name, a, b)}")
    return out


def first_difference(name: str, a: Any, b: Any) -> str:
    """Where two versions of a document first differ: ``rows[12] key 'supply' (5 vs 6)``."""
    if isinstance(a, str) and isinstance(b, str):
        return _csv_difference(a, b)
    if not isinstance(a, dict) or not isinstance(b, dict):
        return f"the whole document ({type(a).__name__} vs {type(b).__name__})"
    for key in sorted(set(a) | set(b)):
        if key not in a or key not in b:
            return f"key {key!r} (only in {'artifacts' if key not in a else 'rows'})"
        x, y = a[key], b[key]
        if _canonical(x) == _canonical(y):
            continue
        if isinstance(x, list) and isinstance(y, list):
            return _list_difference(key, x, y)
        return f"key {key!r} ({_short_value(x)} vs {_short_value(y)})"
    return "number formatting (values equal, canonical text differs)"


def _list_difference(table: str, x: list[Any], y: list[Any]) -> str:
    for i, (r, s) in enumerate(zip(x, y, strict=False)):
        if _canonical(r) == _canonical(s):
            continue
        if isinstance(r, dict) and isinstance(s, dict):
            for key in sorted(set(r) | set(s)):
                if _canonical(r.get(key, _ABSENT)) != _canonical(s.get(key, _ABSENT)):
                    return (
                        f"{table}[{i}] key {key!r} "
                        f"({_short_value(r.get(key, _ABSENT))} vs {_short_value(s.get(key, _ABSENT))})"
                    )
        return f"{table}[{i}] ({_short_value(r)} vs {_short_value(s)})"
    return f"{table}[{min(len(x), len(y))}] (rows have {len(x)} rows, artifacts {len(y)})"


def _csv_difference(a: str, b: str) -> str:
    la, lb = a.splitlines(), b.splitlines()
    header = la[0].split(",") if la else []
    for i, (x, y) in enumerate(zip(la, lb, strict=False)):
        if x != y:
            xs, ys = x.split(","), y.split(",")
            for j, (u, v) in enumerate(zip(xs, ys, strict=False)):
                if u != v:
                    key = header[j] if j < len(header) and i > 0 else f"column {j}"
                    return f"rows[{i - 1}] key {key!r} ({u!r} vs {v!r})" if i else f"header ({x!r} vs {y!r})"
            return f"line {i + 1} ({x!r} vs {y!r})"
    return f"rows[{min(len(la), len(lb)) - 1}] (rows have {len(la) - 1} rows, artifacts {len(lb) - 1})"


class _Absent:
    def __repr__(self) -> str:
        return "absent"


_ABSENT = _Absent()


def _canonical(value: Any) -> str:
    if value is _ABSENT:
        return "\x00absent"
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _short_value(value: Any, limit: int = 80) -> str:
    shown = repr(value) if value is _ABSENT else _canonical(value)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


# --- plan identities ----------------------------------------------------------------------------


def identity_problems(content: PlanContent) -> list[tuple[str, str]]:
    """(kind, detail) for each plan identity the content breaks; identities whose documents are
    absent are skipped (a missing document is reported by the completeness checks)."""
    documents = content.documents
    out: list[tuple[str, str]] = []
    aggregate = _rows(documents.get("aggregate.json"))
    if aggregate is not None:
        out += [("aggregate_identity", d) for d in aggregate_identity(aggregate)]
        detail = _rows(documents.get("sku_week.json"))
        if detail is not None:
            out += [("conservation", d) for d in conservation(aggregate, detail)]
    for name in ("mrp.json", "plan_final.json"):
        rows = _rows(documents.get(name))
        if rows is not None:
            out += [("mrp_identity", d) for d in mrp_identity(name, rows)]
    return out


def _rows(document: Any) -> list[dict[str, Any]] | None:
    rows = document.get("rows") if isinstance(document, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        return None
    return rows


def _column(rows: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    """A numeric column (missing or non-numeric values become NaN, which no identity accepts)."""
    try:  # fast path: every row holds a plain number
        values = list(map(itemgetter(key), rows))
        if bool not in set(map(type, values)):
            return np.fromiter(values, dtype=np.float64, count=len(rows))
    except (KeyError, TypeError, ValueError):
        pass
    return np.fromiter((_number(r.get(key)) for r in rows), dtype=np.float64, count=len(rows))


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return float("nan")
    return float(value)


def _violations(lhs: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Indices where ``lhs`` and ``rhs`` differ beyond the tolerance (NaN always differs)."""
    scale = np.maximum(np.abs(lhs), np.abs(rhs))
    with np.errstate(invalid="ignore"):
        ok = np.abs(lhs - rhs) <= ABS_TOL + REL_TOL * scale
    return np.flatnonzero(~ok)


def _fmt(value: float) -> str:
    return repr(docs.num(value)) if np.isfinite(value) else "missing"


def aggregate_identity(rows: Sequence[dict[str, Any]]) -> list[str]:
    """inventory_close − backlog = inventory_open − backlog_in + supply − demand per aggregate row,
    backlog_in being the family's backlog of the previous period (0 in its first period)."""
    if not rows:
        return []
    family = [str(r.get("family")) for r in rows]
    period = [str(r.get("period")) for r in rows]
    order = sorted(range(len(rows)), key=lambda i: (family[i], period[i]))
    o = np.asarray(order, dtype=np.int64)
    backlog = _column(rows, "backlog")[o]
    fam = np.asarray(family, dtype=object)[o]
    backlog_in = np.zeros_like(backlog)
    if len(o) > 1:
        same = fam[1:] == fam[:-1]
        backlog_in[1:] = np.where(same, backlog[:-1], 0.0)
    lhs = _column(rows, "inventory_close")[o] - backlog
    rhs = (
        _column(rows, "inventory_open")[o]
        - backlog_in
        + _column(rows, "supply")[o]
        - _column(rows, "demand")[o]
    )
    bad = _violations(lhs, rhs)
    if not bad.size:
        return []
    examples = [
        f"aggregate.json rows[{order[i]}] ({family[order[i]]}, {period[order[i]]}): "
        f"inventory_close - backlog = {_fmt(lhs[i])} but inventory_open - backlog_in + supply - demand "
        f"= {_fmt(rhs[i])}"
        for i in bad[:EXAMPLES].tolist()
    ]
    return [f"{bad.size} aggregate row(s) break the inventory balance; " + "; ".join(examples)]


def conservation(aggregate: Sequence[dict[str, Any]], detail: Sequence[dict[str, Any]]) -> list[str]:
    """Per (family, period), the detail's demand, supply and backlog sum to the aggregate row's."""
    index: dict[tuple[Any, Any], int] = {}
    for i, r in enumerate(aggregate):
        index.setdefault((r.get("family"), r.get("period")), i)
    keys = zip(map(_get("family"), detail), map(_get("period"), detail), strict=True)
    where = np.fromiter((index.get(k, -1) for k in keys), dtype=np.int64, count=len(detail))
    out = []
    strays = np.flatnonzero(where < 0)
    if strays.size:
        r = detail[int(strays[0])]
        out.append(
            f"{strays.size} sku_week row(s) have no aggregate row, e.g. rows[{int(strays[0])}] "
            f"({r.get('family')}, {r.get('period')})"
        )
    placed = where >= 0
    for measure in ("demand", "supply", "backlog"):
        values = _column(detail, measure)
        sums = np.bincount(where[placed], weights=values[placed], minlength=len(aggregate))
        target = _column(aggregate, measure)
        bad = _violations(sums, target)
        if bad.size:
            examples = "; ".join(
                f"({aggregate[i].get('family')}, {aggregate[i].get('period')}) detail {_fmt(sums[i])} "
                f"vs aggregate {_fmt(target[i])}"
                for i in bad[:EXAMPLES].tolist()
            )
            out.append(f"{measure}: {bad.size} (family, period) cell(s) not conserved; {examples}")
    return out


def mrp_identity(name: str, rows: Sequence[dict[str, Any]]) -> list[str]:
    """on_hand_end = on_hand_start + scheduled_receipts + planned_order_receipt − gross_req per row."""
    if not rows:
        return []
    lhs = _column(rows, "on_hand_end")
    rhs = (
        _column(rows, "on_hand_start")
        + _column(rows, "scheduled_receipts")
        + _column(rows, "planned_order_receipt")
        - _column(rows, "gross_req")
    )
    bad = _violations(lhs, rhs)
    if not bad.size:
        return []
    examples = "; ".join(
        f"rows[{i}] ({rows[i].get('item')}, {rows[i].get('week')}): on_hand_end {_fmt(lhs[i])} but "
        f"on_hand_start + scheduled_receipts + planned_order_receipt - gross_req = {_fmt(rhs[i])}"
        for i in bad[:EXAMPLES].tolist()
    )
    return [f"{name}: {bad.size} row(s) break the on-hand balance; {examples}"]


def _get(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda row: row.get(key)


# --- recording ----------------------------------------------------------------------------------


def _record(engine: Engine, report: CheckReport) -> None:
    """Store the summary for the ops page; a database too damaged to take it must not hide the report."""
    summary = {
        "at": report.at,
        "ok": report.ok,
        "problems": len(report.problems),
        "versions": report.versions_checked,
    }
    try:
        set_value(engine, LAST_CHECK, json.dumps(summary, sort_keys=True))
    except Exception:
        pass


def _short(exc: BaseException, limit: int = 300) -> str:
    message = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return message if len(message) <= limit else message[: limit - 1] + "…"
