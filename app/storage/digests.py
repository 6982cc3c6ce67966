"""Content digests of a version's two encodings, so checks can tell them intact without decoding.

Owns two SHA-256 digests kept in ``plan_versions``:

- ``rows_digest``: the version's PlanRepository content rows — every ``plan_series`` level but the PSI
  markers, in ``LEVEL_COLUMNS`` order and ``seq`` order, then ``plan_kpis`` — hashed column by column.
  Values are normalized to the types the databases hand back (DOUBLE → float, BIGINT/BOOLEAN/INTEGER →
  int, text → str), so the digest made from the rows the codec writes equals the digest of the rows
  read back, on SQLite and on PostgreSQL alike.
- ``artifacts_digest``: the texts of the plan artifacts (the core five and the two derived ones,
  whichever are stored), by name.

PSI overrides and events are edited in place, so neither digest covers them; checks compare them in full
(they are small).

**Write generations.** Database triggers (revision 0005) raise a version's ``rows_generation`` on every
write to ``plan_series``, ``plan_kpis``, ``plan_overrides`` or ``plan_override_events``, its
``artifacts_generation`` on every write to ``plan_artifacts`` (and ``copy_generation`` on every write to
the ready copy, which carries its own digest and rows generation) — whoever writes,
a hand-made ``UPDATE`` in ``sqlite3`` or ``psql`` included. :func:`record` notes the generation each
digest is true at (``certified_rows_generation``, ``certified_artifacts_generation``). While a generation
still equals its certified one, nothing was written to that encoding since, so its digest is still true
without hashing anything: :func:`trusted` says which encodings a check may take as certified.

**Certified pair.** When both columns are set, the two encodings were written from one and the same
content: by a ``both``-mode write, by a rollback repair that made the artifacts from rows whose digest
matched, or by a backfill that made the rows from the artifacts. A check that recomputes both digests and
finds them equal to the pair knows, without decoding, that both encodings still hold that content. Any
other change of one encoding clears the digests it can no longer vouch for (:func:`clear`); the next check
of that version decodes it in full.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    Double,
    Integer,
    LargeBinary,
    cast,
    func,
    literal_column,
    select,
    update,
)

from app.planning.model import PLAN_ARTIFACTS
from app.storage import codec_series
from app.storage.schema import (
    plan_artifacts,
    plan_kpis,
    plan_series,
    plan_versions,
    plan_write_generations,
)

#: Levels the rows digest covers, in the order they are hashed (PSI markers change with PSI edits).
DIGEST_LEVELS = tuple(level for level in codec_series.LEVEL_COLUMNS if level != "psi")

Row = Sequence[Any]


def _kind(column: Any) -> str:
    if isinstance(column.type, Double):
        return "float"
    if isinstance(column.type, (BigInteger, Integer, Boolean)):
        return "int"
    return "str"


_LEVEL_KINDS = {
    level: tuple(_kind(plan_series.c[name]) for name in columns)
    for level, columns in codec_series.LEVEL_COLUMNS.items()
}
_KPI_KINDS = tuple(_kind(plan_kpis.c[name]) for name in codec_series.KPI_COLUMNS)
_EXPECTED = {"float": {float, type(None)}, "int": {int, type(None)}, "str": {str, type(None)}}
_CONVERT = {"float": float, "int": int, "str": str}


def canonical_rows(kinds: Sequence[str], rows: Sequence[Row]) -> Sequence[Row]:
    """Rows with every value of the type the databases return for its column (DOUBLE → float,
    BIGINT/BOOLEAN/INTEGER → int, text → str; None stays None), in ``seq`` order. Rows that already
    are are returned as they came (what SQLite gives back), so hashing them costs no conversion."""
    if not rows:
        return rows
    if any(rows[i][0] > rows[i + 1][0] for i in range(len(rows) - 1)):
        rows = sorted(rows, key=lambda r: r[0])
    columns = list(zip(*rows, strict=True))
    wrong = [j for j, (kind, values) in enumerate(zip(kinds, columns, strict=True)) if not set(map(type, values)) <= _EXPECTED[kind]]  # fmt: skip
    if not wrong:
        return rows
    for j in wrong:
        convert = _CONVERT[kinds[j]]
        columns[j] = [None if v is None else convert(v) for v in columns[j]]
    return list(zip(*columns, strict=True))


def _hash_table(digest: Any, name: str, width: int, rows: Sequence[Row]) -> None:
    digest.update(f"\x1e{name}\x1f{len(rows)}\x1f{width}\x1e".encode())
    if rows:
        digest.update(orjson.dumps(rows))


def rows_digest(levels: Mapping[str, Sequence[Row]], kpis: Sequence[Row], *, canonical: bool = False) -> str:
    """The digest of content rows: ``levels`` maps a level to tuples in ``LEVEL_COLUMNS[level]`` order,
    ``kpis`` are tuples in ``KPI_COLUMNS`` order (as the codec encodes and the store reads them).
    ``canonical``: the caller vouches the rows are already as :func:`canonical_rows` makes them (rows
    read back from SQLite in ``seq`` order are), which skips the type scan."""

    def prepared(kinds: Sequence[str], rows: Sequence[Row]) -> Sequence[Row]:
        return rows if canonical else canonical_rows(kinds, rows)

    digest = hashlib.sha256(b"scpln rows digest 2")
    for level in DIGEST_LEVELS:
        width = len(_LEVEL_KINDS[level])
        _hash_table(digest, level, width, prepared(_LEVEL_KINDS[level], levels.get(level, ())))
    _hash_table(digest, "plan_kpis", len(_KPI_KINDS), prepared(_KPI_KINDS, kpis))
    return digest.hexdigest()


def series_digest(rows: codec_series.SeriesRows) -> str:
    """The rows digest of what the codec is about to write."""
    return rows_digest(rows.levels, rows.kpis)


def artifacts_digest(texts: Mapping[str, str | bytes]) -> str:
    """The digest of the stored plan artifact texts, given as text or as their UTF-8 bytes (PSI
    documents and unknown names are not covered)."""
    digest = hashlib.sha256(b"scpln artifacts digest 1")
    for name in sorted(n for n in texts if n in PLAN_ARTIFACTS):
        text = texts[name]
        body = text if isinstance(text, bytes) else text.encode("utf-8")
        digest.update(f"\x1e{name}\x1f{len(body)}\x1e".encode())
        digest.update(body)
    return digest.hexdigest()


def stored_artifact_bytes(conn: Connection, version_id: str) -> dict[str, bytes]:
    """The version's stored artifacts as UTF-8 bytes, straight from the database (hashing them needs no
    round trip through Python text)."""
    if conn.dialect.name == "postgresql":
        body = func.convert_to(plan_artifacts.c.json_text, literal_column("'UTF8'"))
    else:
        body = cast(plan_artifacts.c.json_text, LargeBinary)
    query = select(plan_artifacts.c.name, body).where(plan_artifacts.c.version_id == version_id)
    return {name: bytes(value) for name, value in conn.execute(query)}


def _generation_now(version_id: str, column: str) -> Any:
    """The version's current generation of one encoding, as a subquery of the writing transaction (NULL
    when the version has no counters yet, which no check trusts)."""
    g = plan_write_generations
    return select(g.c[column]).where(g.c.version_id == version_id).scalar_subquery()


def record(conn: Connection, version_id: str, *, rows: str | None, artifacts: str | None) -> None:
    """Set both digests of a version (None clears one), certified at the encodings' generations as they
    stand in this transaction: call it after the writes the digests describe."""
    conn.execute(
        update(plan_versions)
        .where(plan_versions.c.version_id == version_id)
        .values(
            rows_digest=rows,
            artifacts_digest=artifacts,
            certified_rows_generation=_generation_now(version_id, "rows_generation") if rows else None,
            certified_artifacts_generation=(
                _generation_now(version_id, "artifacts_generation") if artifacts else None
            ),
        )
    )


def set_artifacts(conn: Connection, version_id: str, value: str | None) -> None:
    conn.execute(
        update(plan_versions)
        .where(plan_versions.c.version_id == version_id)
        .values(
            artifacts_digest=value,
            certified_artifacts_generation=(
                _generation_now(version_id, "artifacts_generation") if value else None
            ),
        )
    )


def clear(conn: Connection, version_ids: Iterable[str]) -> None:
    """Forget both digests: the versions' encodings changed in a way no digest vouches for."""
    ids = list(version_ids)
    if ids:
        conn.execute(
            update(plan_versions)
            .where(plan_versions.c.version_id.in_(ids))
            .values(
                rows_digest=None,
                artifacts_digest=None,
                certified_rows_generation=None,
                certified_artifacts_generation=None,
            )
        )


def ensure_generations(conn: Connection, version_id: str) -> None:
    """Give a version its counters if it has none. The plan store calls it after writing a new
    version's content, so the triggers of that first bulk write found no counter to raise."""
    g = plan_write_generations
    exists = conn.execute(select(g.c.version_id).where(g.c.version_id == version_id)).first()
    if exists is None:
        conn.execute(
            g.insert().values(
                version_id=version_id, rows_generation=1, artifacts_generation=1, copy_generation=1
            )
        )


#: Generation column each content table's triggers raise (revision 0005 creates the triggers).
GENERATION_OF = {
    "plan_series": "rows_generation",
    "plan_kpis": "rows_generation",
    "plan_overrides": "rows_generation",
    "plan_override_events": "rows_generation",
    "plan_artifacts": "artifacts_generation",
    "plan_ready_copies": "copy_generation",
}


@contextmanager
def bulk_insert_generations(conn: Connection, version_id: str, tables: Iterable[str]) -> Iterator[None]:
    """Around the plan store's bulk insert of one version's content into ``tables``, in its open
    transaction: raise that version's generation of each of ``tables`` once, not once per row.

    SQLite's triggers are row level, so a million-row insert would run the counter's ``UPDATE`` a
    million times (and journal a page for each row's statement). On SQLite the tables' insert triggers
    are dropped inside the transaction and created again from their own stored text before it ends,
    and the generations they raise are raised once, if the version has counters yet (a new version's
    counters are made after its content, see :func:`ensure_generations`). Other connections never see
    the triggers missing: SQLite has one writer at a time and the schema change commits or rolls back
    with the content. PostgreSQL's triggers are statement level already and stay as they are. On an
    error the caller rolls the transaction back, which restores the triggers."""
    if conn.dialect.name != "sqlite":
        yield
        return
    tables = [t for t in dict.fromkeys(tables) if t in GENERATION_OF]
    names = {f"trg_{t}_generation_insert": t for t in tables}
    marks = ", ".join("?" * len(names))
    found = conn.exec_driver_sql(
        f"SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name IN ({marks})", tuple(names)
    ).all()
    for name, _ in found:
        conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
    yield
    for _, sql in found:
        conn.exec_driver_sql(sql)
    raised = sorted({GENERATION_OF[names[name]] for name, _ in found})
    if raised:
        g = plan_write_generations
        conn.execute(update(g).where(g.c.version_id == version_id).values({c: g.c[c] + 1 for c in raised}))


def certify_generations(conn: Connection, version_id: str) -> None:
    """Certify the version whole at its current generations, an encoding without a digest as absent.
    Only a writer that has just written the whole version (the plan store) may say so."""
    conn.execute(
        update(plan_versions)
        .where(plan_versions.c.version_id == version_id)
        .values(
            certified_rows_generation=_generation_now(version_id, "rows_generation"),
            certified_artifacts_generation=_generation_now(version_id, "artifacts_generation"),
        )
    )


@dataclass(frozen=True)
class Certification:
    """A version's recorded digests, the generations they were certified at, and its generations now."""

    rows_digest: str | None
    artifacts_digest: str | None
    certified_rows: int | None
    certified_artifacts: int | None
    rows_generation: int | None
    artifacts_generation: int | None

    @property
    def rows_trusted(self) -> bool:
        """The rows digest is still true: nothing was written to the rows since it was certified."""
        return bool(self.rows_digest) and _same(self.certified_rows, self.rows_generation)

    @property
    def artifacts_trusted(self) -> bool:
        """The artifacts digest is still true: nothing was written to the artifacts since it was
        certified."""
        return bool(self.artifacts_digest) and _same(self.certified_artifacts, self.artifacts_generation)

    @property
    def pair_trusted(self) -> bool:
        return self.rows_trusted and self.artifacts_trusted

    @property
    def unchanged(self) -> bool:
        """Neither encoding was written since the version was last certified whole."""
        return _same(self.certified_rows, self.rows_generation) and _same(
            self.certified_artifacts, self.artifacts_generation
        )


def _same(certified: int | None, now: int | None) -> bool:
    return certified is not None and now is not None and certified == now


def certification_columns() -> list[Any]:
    v, g = plan_versions, plan_write_generations
    return [
        v.c.rows_digest,
        v.c.artifacts_digest,
        v.c.certified_rows_generation,
        v.c.certified_artifacts_generation,
        g.c.rows_generation,
        g.c.artifacts_generation,
    ]


def certification_join() -> Any:
    """``plan_versions`` outer-joined to its counters (select :func:`certification_columns` from it)."""
    return plan_versions.outerjoin(
        plan_write_generations, plan_write_generations.c.version_id == plan_versions.c.version_id
    )


def certification(conn: Connection, version_id: str) -> Certification | None:
    """A version's certification (None when the version does not exist); one catalogue read."""
    found = conn.execute(
        select(*certification_columns())
        .select_from(certification_join())
        .where(plan_versions.c.version_id == version_id)
    ).first()
    return Certification(*found) if found is not None else None
