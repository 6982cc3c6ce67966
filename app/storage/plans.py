"""The plan store: the one write path and read path of plan versions (SPEC 4.3).

Owns writing a version in its storage mode — artifacts, PlanRepository rows or both — in ONE
transaction and in bulk (``executemany`` on SQLite, ``COPY`` on PostgreSQL), reading it back with the
mode's fallback rule, the version catalogue (``plan_versions``) and marking failed writes. Documents
and rows are built only by the two codecs; this module moves them.

``files`` mode never touches the PlanRepository content tables (``plan_series``, ``plan_kpis``,
``plan_overrides``, ``plan_override_events``): not to write, not to read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.db import get_engine, now_ms, sqlite_path
from app.errors import EncodingMissing, PlanNotFound, StorageError, VersionConflict
from app.planning import derive
from app.planning.model import DERIVED_ARTIFACTS, PlanContent
from app.storage import codec_artifacts, codec_series, digests, rowtext
from app.storage.schema import (
    plan_artifacts,
    plan_kpis,
    plan_override_events,
    plan_overrides,
    plan_series,
    plan_versions,
)
from app.storage.settings import MODES, effective_mode

#: Called after a write attempt: (mode, seconds, error kind or None). The service hooks metrics here.
WriteObserver = Callable[[str, float, str | None], None]
_observers: list[WriteObserver] = []


def observe_writes(observer: WriteObserver) -> None:
    if observer not in _observers:
        _observers.append(observer)


@dataclass
class VersionInfo:
    """One ``plan_versions`` row."""

    version_id: str
    status: str
    approval: str
    created_at: int
    updated_at: int
    input_label: str | None
    input_dir: str | None
    params: dict[str, Any]
    storage_mode: str | None
    parent_version_id: str | None
    note: str | None
    schema_version: int | None
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class WriteResult:
    version_id: str
    mode: str
    artifacts: list[str]
    series_rows: int
    kpi_rows: int
    seconds: float
    #: The artifact texts as stored (empty in ``db`` mode), for a caller that also writes them out.
    texts: dict[str, str] = field(default_factory=dict, repr=False)


#: The levels :meth:`PlanStore.read_rows_as_text` has the C writer make on SQLite: the tables of the
#: JSON documents (report.csv's rows make CSV, not JSON).
TEXT_LEVELS = tuple(lv.name for lv in codec_series.LEVELS if lv.document.endswith(".json"))


class PlanStore:
    """Plan versions in one database. Cheap to create; holds only the engine."""

    def __init__(self, engine: Engine | None = None):
        self.engine = engine or get_engine()
        self.dialect = self.engine.dialect.name

    # --- mode ----------------------------------------------------------------------------------

    def effective_mode(self, requested: str | None = None) -> str:
        return effective_mode(self.engine, requested)

    # --- writing -------------------------------------------------------------------------------

    def begin_version(
        self,
        version_id: str,
        *,
        params: dict[str, Any],
        mode: str,
        input_label: str | None = None,
        note: str | None = None,
        parent_version_id: str | None = None,
        input_dir: str | None = None,
    ) -> None:
        """Register a version as ``running`` before it is planned (asynchronous jobs)."""
        ts = now_ms()
        with self.engine.begin() as conn:
            self._claim(conn, version_id)
            conn.execute(
                insert(plan_versions).values(
                    version_id=version_id, status="running", approval="draft", created_at=ts, updated_at=ts,
                    input_label=input_label, input_dir=input_dir, params_json=_dumps(params), storage_mode=mode, note=note,
                    parent_version_id=parent_version_id,
                )
            )  # fmt: skip

    def write_version(
        self,
        content: PlanContent,
        *,
        mode: str,
        input_label: str | None = None,
        note: str | None = None,
        parent_version_id: str | None = None,
        input_dir: str | None = None,
        before_commit: Callable[[Connection], None] | None = None,
    ) -> WriteResult:
        """Write a whole version in ``mode`` in one transaction; on any failure nothing of its content
        remains, the version is marked ``failed`` and ``StorageError`` is raised."""
        if mode not in MODES:
            raise ValueError(f"storage mode must be one of {', '.join(MODES)}, not {mode!r}")
        started = time.perf_counter()
        vid = content.version_id
        try:
            rows = codec_series.encode(content) if mode in ("db", "both") else None
            rows_digest = (
                digests.rows_digest(rows.levels, rows.kpis, canonical=rows.canonical)
                if rows is not None
                else None
            )
            # in both mode the texts are made once the rows are stored and let go (below), so a large
            # plan never holds both encodings in memory at once
            texts, artifacts_digest = _artifact_texts(content, validated=False) if mode == "files" else ({}, None)  # fmt: skip
        except ValueError as exc:
            self._failed(vid, mode, started, "encode", exc, content, input_label, note, parent_version_id)
            raise StorageError(f"plan {vid} could not be encoded: {exc}") from exc
        ts = now_ms()
        try:
            with self.engine.begin() as conn:
                existing = self._claim(conn, vid)
                values = dict(
                    status="ready", updated_at=ts, input_label=input_label, params_json=_dumps(content.params),
                    input_dir=input_dir,
                    storage_mode=mode, note=note, parent_version_id=parent_version_id, error=None,
                    schema_version=rows.schema_version if rows else _schema_version(content),
                    # both encodings are made from this one content: in both mode they are a certified pair
                    rows_digest=rows_digest,
                    artifacts_digest=artifacts_digest,
                )  # fmt: skip
                if existing:
                    conn.execute(
                        update(plan_versions).where(plan_versions.c.version_id == vid).values(**values)
                    )
                else:
                    conn.execute(
                        insert(plan_versions).values(
                            version_id=vid, approval="draft", created_at=ts, **values
                        )
                    )
                series_rows, kpi_rows = (rows.series_row_count, len(rows.kpis)) if rows else (0, 0)
                if rows is not None:
                    self._insert_rows(conn, vid, rows, ts)
                    self._insert_psi(conn, vid, rows)
                    rows.levels = {}
                if mode == "both":
                    texts, artifacts_digest = _artifact_texts(content, validated=True)
                    digests.set_artifacts(conn, vid, artifacts_digest)
                if texts:
                    self._insert_artifacts(conn, vid, texts, ts)
                set_approval(conn, vid, codec_series.psi_approval(content))
                if before_commit:
                    before_commit(conn)
        except VersionConflict:
            raise
        except Exception as exc:
            self._failed(
                vid, mode, started, type(exc).__name__, exc, content, input_label, note, parent_version_id
            )
            raise StorageError(f"plan {vid} was not stored ({mode}): {exc}") from exc
        seconds = time.perf_counter() - started
        self._notify(mode, seconds, None)
        return WriteResult(
            vid,
            mode,
            sorted(texts),
            series_rows,
            kpi_rows,
            seconds,
            texts,
        )

    def write_artifacts(
        self, content: PlanContent, conn: Connection | None = None, *, rows_digest: str | None = None
    ) -> list[str]:
        """Replace a version's artifacts with those of ``content``. The version row must exist.

        ``rows_digest``: the content was decoded from the version's rows, whose digest this is; the two
        encodings are then recorded as a certified pair. Without it the artifacts digest is cleared."""
        texts = codec_artifacts.encode(content)
        with self._tx(conn) as c:
            self._require(c, content.version_id)
            c.execute(
                delete(plan_artifacts).where(
                    plan_artifacts.c.version_id == content.version_id, plan_artifacts.c.name.in_(list(texts))
                )
            )
            self._insert_artifacts(c, content.version_id, texts, now_ms())
            if rows_digest is not None:
                self.certify(c, content.version_id, rows_digest)
            else:
                digests.set_artifacts(c, content.version_id, None)
        return sorted(texts)

    def certify(self, conn: Connection, version_id: str, rows_digest: str | None = None) -> str:
        """Record the version's rows digest (by default the one :meth:`write_rows` just recorded) and
        the digest of its stored artifacts as a certified pair: the caller has just made one encoding
        from the other. Returns the artifacts digest."""
        if rows_digest is None:
            rows_digest = conn.execute(
                select(plan_versions.c.rows_digest).where(plan_versions.c.version_id == version_id)
            ).scalar_one()
        stored = self._artifact_texts(conn, version_id, None)
        value = digests.artifacts_digest(stored)
        digests.record(conn, version_id, rows=rows_digest, artifacts=value)
        return value

    def write_rows(self, content: PlanContent, conn: Connection | None = None) -> int:
        """Replace a version's series and KPI rows (backfill). Overrides and events are never touched.
        The rows digest is recorded and the artifacts digest cleared (see :meth:`certify`)."""
        rows = codec_series.encode(content)
        with self._tx(conn) as c:
            self._require(c, content.version_id)
            self.delete_rows(content.version_id, c)
            self._insert_rows(c, content.version_id, rows, now_ms())
            # the artifacts no longer vouch for these rows until the caller certifies the pair
            digests.record(c, content.version_id, rows=digests.series_digest(rows), artifacts=None)
            if not has_psi_rows(c, content.version_id):  # PSI rows already there are never replaced
                self._insert_psi(c, content.version_id, rows)
            # Rows are decoded with the catalogue's params and schema version as the documents' header;
            # a version that arrived through the legacy helpers may lack them or hold others.
            c.execute(
                update(plan_versions)
                .where(plan_versions.c.version_id == content.version_id)
                .values(params_json=_dumps(content.params), schema_version=rows.schema_version)
            )
        return rows.series_row_count

    def delete_rows(self, version_id: str, conn: Connection) -> None:
        conn.execute(delete(plan_series).where(plan_series.c.version_id == version_id))
        conn.execute(delete(plan_kpis).where(plan_kpis.c.version_id == version_id))

    def mark_failed(self, version_id: str, error: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(plan_versions)
                .where(plan_versions.c.version_id == version_id)
                .values(status="failed", error=error[:2000], updated_at=now_ms())
            )

    def delete_version(self, version_id: str) -> None:
        """Delete a version from every encoding (content tables cascade)."""
        with self.engine.begin() as conn:
            self._require(conn, version_id)
            conn.execute(delete(plan_artifacts).where(plan_artifacts.c.version_id == version_id))
            if (
                self.dialect == "sqlite"
            ):  # cascades need foreign_keys=ON, which app.db sets; be explicit anyway
                self.delete_rows(version_id, conn)
            conn.execute(delete(plan_versions).where(plan_versions.c.version_id == version_id))

    # --- reading -------------------------------------------------------------------------------

    def get_version(self, version_id: str) -> VersionInfo:
        with self.engine.connect() as conn:
            row = conn.execute(select(plan_versions).where(plan_versions.c.version_id == version_id)).first()
        if row is None:
            raise PlanNotFound(f"plan version {version_id!r} does not exist")
        return _info(row)

    def list_versions(
        self, *, limit: int = 50, offset: int = 0, status: str | None = None, order: str = "desc"
    ) -> tuple[list[VersionInfo], int]:
        """A page of versions, newest first by default, and the total count."""
        query = select(plan_versions)
        count = select(func.count()).select_from(plan_versions)
        if status:
            query = query.where(plan_versions.c.status == status)
            count = count.where(plan_versions.c.status == status)
        key = plan_versions.c.created_at.asc() if order == "asc" else plan_versions.c.created_at.desc()
        tie = plan_versions.c.version_id.asc() if order == "asc" else plan_versions.c.version_id.desc()
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(key, tie).limit(limit).offset(offset)).all()
            total = conn.execute(count).scalar_one()
        return [_info(r) for r in rows], total

    def read_version(self, version_id: str, mode: str | None = None) -> PlanContent:
        """The plan content as the effective mode reads it: ``files`` from artifacts only, ``db`` from rows
        only, ``both`` from rows with a fallback to artifacts for this version."""
        mode = mode or self.effective_mode()
        info = self.get_version(version_id)
        if info.status != "ready":
            raise EncodingMissing(f"plan version {version_id!r} is {info.status}", {"status": info.status})
        content = None
        if mode in ("db", "both"):
            content = self.read_rows(version_id)
        if content is None and mode in ("files", "both"):
            content = self.read_artifacts(version_id)
        if content is None:
            raise EncodingMissing(f"plan version {version_id!r} has no content readable in {mode!r} mode")
        return content

    def read_for_export(self, version_id: str) -> PlanContent:
        """The exporter's rule: rows whenever they exist, in any mode, and artifacts otherwise."""
        self.get_version(version_id)
        content = self.read_rows(version_id) or self.read_artifacts(version_id)
        if content is None:
            raise EncodingMissing(f"plan version {version_id!r} has neither rows nor artifacts")
        return content

    def has_rows(self, version_id: str, conn: Connection | None = None) -> bool:
        query = select(plan_series.c.id).where(plan_series.c.version_id == version_id).limit(1)
        with self._read(conn) as c:
            return c.execute(query).first() is not None

    def artifact_names(self, version_id: str, conn: Connection | None = None) -> list[str]:
        query = select(plan_artifacts.c.name).where(plan_artifacts.c.version_id == version_id)
        with self._read(conn) as c:
            return sorted(c.execute(query).scalars())

    def read_rows(self, version_id: str) -> PlanContent | None:
        """Decode the PlanRepository rows of a version, or None when it has none."""
        return self.read_rows_and_digest(version_id)[0]

    def read_rows_and_digest(
        self, version_id: str, *, fragments: bool = False
    ) -> tuple[PlanContent | None, str | None]:
        """The decoded rows of a version and the digest of the rows as read (None, None without rows).
        ``fragments``: row tables as canonical JSON text, for writing artifacts only (see
        ``codec_series.decode``)."""
        fetched = self._fetch_rows(version_id)
        if fetched is None:
            return None, None
        head, levels, kpis, overrides, events = fetched
        params = json.loads(head.params_json) if head.params_json else {}
        content = codec_series.decode(
            version_id, params, head.schema_version, levels, kpis,
            overrides=overrides, events=events, approval=head.approval, fragments=fragments,
        )  # fmt: skip
        return content, self._digest_of_read(levels, kpis)

    def read_rows_as_text(self, version_id: str) -> PlanContent | None:
        """The version's rows decoded for writing artifacts only: every row table is its canonical JSON
        text (``fragments``). On SQLite the tables of the JSON documents are written by the C writer
        where it can (``app.storage.rowtext``), the rest decoded row by row; None when the version has
        no rows. The rows are not checked against their digest here: the caller checks the texts."""
        made: dict[str, tuple[Any, int]] = {}
        path = sqlite_path(self.engine.url.render_as_string(hide_password=False))
        if path is not None:
            made = rowtext.level_texts(path, version_id, TEXT_LEVELS)
        # a level another borrows from is read as rows too (codec_series.Level.base)
        bases = {lv.base for lv in codec_series.LEVELS if lv.base}
        fetched = self._fetch_rows(version_id, skip=[n for n in made if n not in bases])
        if fetched is None:
            if any(count for _, count in made.values()):  # as decode() refuses rows without a document
                raise ValueError(f"plan_series of {version_id}: row tables but no meta rows")
            return None
        head, levels, kpis, overrides, events = fetched
        params = json.loads(head.params_json) if head.params_json else {}
        return codec_series.decode(
            version_id, params, head.schema_version, levels, kpis,
            overrides=overrides, events=events, approval=head.approval, fragments=True, premade=made,
        )  # fmt: skip

    def rows_digest_now(self, version_id: str) -> str | None:
        """The digest of the version's content rows as stored now (None when it has none); nothing is
        decoded. On SQLite the C writer gives the hashed text of the levels it can
        (``app.storage.rowtext``); the rest are read row by row."""
        made: dict[str, tuple[bytes, int]] = {}
        path = sqlite_path(self.engine.url.render_as_string(hide_password=False))
        if path is not None:
            made = rowtext.rows_texts(path, version_id, digests.DIGEST_LEVELS)
        fetched = self._fetch_rows(version_id, psi=False, skip=made)
        if fetched is None and not any(count for _, count in made.values()):
            return None
        levels, kpis = (fetched[1], fetched[2]) if fetched is not None else ({}, [])
        return digests.rows_digest(levels, kpis, canonical=self.dialect == "sqlite", texts=made)

    def _digest_of_read(self, levels: dict[str, list[tuple]], kpis: list[tuple]) -> str:
        # SQLite hands rows back in seq order with the canonical types already (REAL, INTEGER, TEXT);
        # PostgreSQL's BOOLEAN comes back as bool, so its rows are normalized first.
        return digests.rows_digest(levels, kpis, canonical=self.dialect == "sqlite")

    def read_psi_documents(self, version_id: str) -> dict[str, Any]:
        """The PSI documents the PlanRepository holds for a version (none when it has no PSI state)."""
        columns = ", ".join(codec_series.LEVEL_COLUMNS["psi"])
        with self.engine.connect() as conn:
            head = conn.execute(
                select(plan_versions.c.schema_version, plan_versions.c.approval).where(
                    plan_versions.c.version_id == version_id
                )
            ).first()
            if head is None:
                raise PlanNotFound(f"plan version {version_id!r} does not exist")
            raw = _cursor(conn)
            raw.execute(
                f"SELECT {columns} FROM plan_series WHERE version_id = {self._ph} AND level = 'psi' "
                "ORDER BY seq",
                (version_id,),
            )
            markers = raw.fetchall()
            overrides, events = read_psi_rows(conn, version_id)
        return codec_series.decode_psi(
            version_id, head.schema_version, markers, overrides, events, head.approval
        )

    def stored_digests(self, version_id: str) -> tuple[str | None, str | None]:
        """The recorded (rows, artifacts) digests of a version."""
        query = select(plan_versions.c.rows_digest, plan_versions.c.artifacts_digest).where(
            plan_versions.c.version_id == version_id
        )
        with self.engine.connect() as conn:
            found = conn.execute(query).first()
        if found is None:
            raise PlanNotFound(f"plan version {version_id!r} does not exist")
        return found[0], found[1]

    def _fetch_rows(self, version_id: str, psi: bool = True, skip: Collection[str] = ()) -> tuple[Any, dict[str, list[tuple]], list[tuple], list, list] | None:  # fmt: skip
        """The catalogue head and the raw rows of a version, one level at a time in ``LEVEL_COLUMNS``
        order, straight from the DBAPI cursor (None when it has no rows); levels in ``skip`` are not
        read."""
        with self.engine.connect() as conn:
            head = conn.execute(
                select(
                    plan_versions.c.params_json, plan_versions.c.schema_version, plan_versions.c.approval
                ).where(plan_versions.c.version_id == version_id)
            ).first()
            if head is None:
                raise PlanNotFound(f"plan version {version_id!r} does not exist")
            levels: dict[str, list[tuple]] = {}
            raw = _cursor(conn)
            for level, columns in codec_series.LEVEL_COLUMNS.items():
                if level in skip:
                    continue
                raw.execute(
                    f"SELECT {', '.join(columns)} FROM plan_series WHERE version_id = {self._ph} "
                    f"AND level = {self._ph} ORDER BY seq",
                    (version_id, level),
                )
                fetched = raw.fetchall()
                if fetched:
                    levels[level] = fetched
            raw.execute(
                f"SELECT {', '.join(codec_series.KPI_COLUMNS)} FROM plan_kpis WHERE version_id = {self._ph} "
                "ORDER BY seq",
                (version_id,),
            )
            kpis = raw.fetchall()
            overrides, events = read_psi_rows(conn, version_id) if psi else ([], [])
        if not levels and not kpis:
            return None
        return head, levels, kpis, overrides, events

    def read_artifacts(self, version_id: str, names: Sequence[str] | None = None) -> PlanContent | None:
        """Decode the artifacts of a version (only ``names`` when given), or None when it has none.

        Derived artifacts (``reconciliation_log.json``, ``exceptions.json``) the version lacks are
        recomputed in memory from its core artifacts when those are stored; :meth:`complete_artifacts`
        stores them.
        """
        with self.engine.connect() as conn:
            texts = self._artifact_texts(conn, version_id, names)
            derivable = [n for n in DERIVED_ARTIFACTS if n not in texts and (not names or n in names)]
            sources = [n for n in derive.SOURCE_DOCUMENTS if n not in texts]
            if derivable and names and sources:
                texts = {**self._artifact_texts(conn, version_id, sources), **texts}
        if not texts:
            return None
        content = codec_artifacts.decode(version_id, texts)
        if derivable and derive.can_derive(content.documents):
            content.documents.update(self._derived(version_id, content.documents))
        if names:
            content.documents = {n: d for n, d in content.documents.items() if n in names}
            if not content.documents:
                return None
        return content

    def complete_artifacts(self, version_id: str) -> list[str]:
        """Store the derived artifacts a version lacks, recomputed from its core artifacts.

        Returns the names stored (empty when nothing was missing). Raises ``EncodingMissing`` when a
        core artifact needed for the recomputation is absent and ``StorageError`` when the core
        artifacts do not give the derived ones back; nothing is written then.
        """
        for _ in range(2):
            try:
                return self._complete_artifacts(version_id)
            except IntegrityError:  # completed concurrently: look again
                continue
        return []

    def _complete_artifacts(self, version_id: str) -> list[str]:
        with self.engine.begin() as conn:
            self._require(conn, version_id)
            present = set(self.artifact_names(version_id, conn))
            if all(n in present for n in DERIVED_ARTIFACTS):
                return []
            absent = [n for n in derive.SOURCE_DOCUMENTS if n not in present]
            if absent:
                raise EncodingMissing(
                    f"plan version {version_id!r} lacks {', '.join(absent)}: its derived artifacts "
                    "cannot be recomputed",
                    {"missing": absent},
                )
            content = codec_artifacts.decode(
                version_id, self._artifact_texts(conn, version_id, derive.SOURCE_DOCUMENTS)
            )
            recomputed = self._derived(version_id, content.documents)
            missing = {n: d for n, d in recomputed.items() if n not in present}
            derived = PlanContent(version_id, content.params, missing)
            try:
                texts = codec_artifacts.encode(derived)
            except ValueError as exc:
                raise StorageError(
                    f"plan {version_id}: recomputed derived artifacts are invalid: {exc}"
                ) from exc
            self._insert_artifacts(conn, version_id, texts, now_ms())
            digests.set_artifacts(conn, version_id, None)
        return sorted(texts)

    def _artifact_texts(
        self, conn: Connection, version_id: str, names: Sequence[str] | None
    ) -> dict[str, str]:
        query = select(plan_artifacts.c.name, plan_artifacts.c.json_text).where(
            plan_artifacts.c.version_id == version_id
        )
        if names:
            query = query.where(plan_artifacts.c.name.in_(list(names)))
        return {r.name: r.json_text for r in conn.execute(query)}

    @staticmethod
    def _derived(version_id: str, documents: dict[str, Any]) -> dict[str, Any]:
        try:
            return derive.derive_documents(documents)
        except derive.DerivationError as exc:
            raise StorageError(f"plan {version_id}: derived artifacts cannot be recomputed: {exc}") from exc

    def artifact_text(self, version_id: str, name: str) -> str | None:
        query = select(plan_artifacts.c.json_text).where(
            plan_artifacts.c.version_id == version_id, plan_artifacts.c.name == name
        )
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one_or_none()

    # --- internals -----------------------------------------------------------------------------

    @property
    def _ph(self) -> str:
        return "?" if self.dialect == "sqlite" else "%s"

    def _claim(self, conn: Connection, version_id: str) -> bool:
        """True when a ``running``/``failed`` row exists to be completed; a ``ready`` one is a conflict."""
        status = conn.execute(
            select(plan_versions.c.status).where(plan_versions.c.version_id == version_id)
        ).scalar_one_or_none()
        if status == "ready":
            raise VersionConflict(f"plan version {version_id!r} already exists; versions are immutable")
        return status is not None

    def _require(self, conn: Connection, version_id: str) -> None:
        found = conn.execute(
            select(plan_versions.c.version_id).where(plan_versions.c.version_id == version_id)
        ).first()
        if found is None:
            raise PlanNotFound(f"plan version {version_id!r} does not exist")

    def _insert_artifacts(self, conn: Connection, version_id: str, texts: dict[str, str], ts: int) -> None:
        conn.execute(
            insert(plan_artifacts),
            [
                {"version_id": version_id, "name": n, "json_text": t, "created_at": ts}
                for n, t in texts.items()
            ],
        )

    def _insert_rows(self, conn: Connection, version_id: str, rows: codec_series.SeriesRows, ts: int) -> None:
        raw = _cursor(conn)
        # each full row is made as the insert takes it, so a level is never held twice
        for columns, values in rows.series_batches(version_id, ts, lazy=True):
            bulk_insert(raw, self.dialect, "plan_series", columns, values)
        kpi_columns, kpi_rows = rows.kpi_batch(version_id, ts)
        if kpi_rows:
            bulk_insert(raw, self.dialect, "plan_kpis", kpi_columns, kpi_rows)

    def _insert_psi(self, conn: Connection, version_id: str, rows: codec_series.SeriesRows) -> None:
        """The PSI documents' override and event rows, in document order, and their approval."""
        raw = _cursor(conn)
        for table, (columns, values) in (
            ("plan_overrides", rows.override_batch(version_id)),
            ("plan_override_events", rows.event_batch(version_id)),
        ):
            if values:
                bulk_insert(raw, self.dialect, table, columns, values)
        if rows.events:
            link_override_events(conn, version_id)
        set_approval(conn, version_id, rows.approval)

    def _failed(self, vid, mode, started, kind, exc, content, input_label, note, parent) -> None:
        self._notify(mode, time.perf_counter() - started, kind)
        try:
            ts = now_ms()
            with self.engine.begin() as conn:
                exists = conn.execute(
                    select(plan_versions.c.status).where(plan_versions.c.version_id == vid)
                ).scalar_one_or_none()
                if exists == "ready":
                    return
                values = dict(status="failed", error=str(exc)[:2000], updated_at=ts, storage_mode=mode)
                if exists is None:
                    conn.execute(
                        insert(plan_versions).values(
                            version_id=vid,
                            approval="draft",
                            created_at=ts,
                            input_label=input_label,
                            params_json=_dumps(content.params),
                            note=note,
                            parent_version_id=parent,
                            **values,
                        )
                    )
                else:
                    conn.execute(
                        update(plan_versions).where(plan_versions.c.version_id == vid).values(**values)
                    )
        except Exception:  # the database itself may be what failed; the caller still gets the error
            pass

    def _notify(self, mode: str, seconds: float, error: str | None) -> None:
        for observer in _observers:
            observer(mode, seconds, error)

    def _tx(self, conn: Connection | None):
        return _Borrowed(conn) if conn is not None else self.engine.begin()

    def _read(self, conn: Connection | None):
        return _Borrowed(conn) if conn is not None else self.engine.connect()


class _Borrowed:
    """Use a caller's connection as a context manager without closing or committing it."""

    def __init__(self, conn: Connection):
        self.conn = conn

    def __enter__(self) -> Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        return None


def _cursor(conn: Connection) -> Any:
    """A DBAPI cursor on the connection's own transaction (bulk paths bypass per-row SQLAlchemy work)."""
    return conn.connection.dbapi_connection.cursor()


def bulk_insert(cursor: Any, dialect: str, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> None:
    """Insert many rows at once: ``executemany`` on SQLite, ``COPY ... FROM STDIN`` on PostgreSQL."""
    cols = ", ".join(columns)
    if dialect == "sqlite":
        marks = ", ".join("?" * len(columns))
        cursor.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)
        return
    with cursor.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _artifact_texts(content: PlanContent, *, validated: bool) -> tuple[dict[str, str], str | None]:
    """The artifact texts to store, each encoded once, and the digest of exactly those bytes."""
    bodies = codec_artifacts.encode_bytes(content, validated=validated)
    digest = digests.artifacts_digest(bodies) if bodies else None
    # one text at a time, so a large plan never holds every artifact twice
    texts = {name: bodies.pop(name).decode() for name in list(bodies)}
    return texts, digest


def _schema_version(content: PlanContent) -> int | None:
    doc = content.documents.get("aggregate.json")
    return doc.get("schema_version") if isinstance(doc, dict) else None


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _info(row: Any) -> VersionInfo:
    return VersionInfo(
        version_id=row.version_id, status=row.status, approval=row.approval, created_at=row.created_at,
        updated_at=row.updated_at, input_label=row.input_label, input_dir=row.input_dir,
        params=json.loads(row.params_json) if row.params_json else {}, storage_mode=row.storage_mode,
        parent_version_id=row.parent_version_id, note=row.note, schema_version=row.schema_version,
        error=row.error,
    )  # fmt: skip


def read_psi_rows(conn: Connection, version_id: str) -> tuple[list[tuple], list[tuple]]:
    """A version's ``plan_overrides`` and ``plan_override_events`` rows in the codec's column order,
    in the order they were written (document order)."""
    o, e = plan_overrides, plan_override_events
    overrides = conn.execute(
        select(*(o.c[c] for c in codec_series.OVERRIDE_COLUMNS))
        .where(o.c.version_id == version_id)
        .order_by(o.c.id)
    )
    events = conn.execute(
        select(*(e.c[c] for c in codec_series.EVENT_COLUMNS))
        .where(e.c.version_id == version_id)
        .order_by(e.c.id)
    )
    return [tuple(r) for r in overrides], [tuple(r) for r in events]


def has_psi_rows(conn: Connection, version_id: str) -> bool:
    for table in (plan_overrides, plan_override_events):
        if conn.execute(select(table.c.id).where(table.c.version_id == version_id).limit(1)).first():
            return True
    return False


def link_override_events(conn: Connection, version_id: str) -> None:
    """Point a version's unlinked events at the override of their cell (same level and key hash)."""
    o, e = plan_overrides, plan_override_events
    override = (
        select(o.c.id)
        .where(o.c.version_id == e.c.version_id, o.c.level == e.c.level, o.c.key_hash == e.c.key_hash)
        .scalar_subquery()
    )
    conn.execute(
        update(e)
        .where(e.c.version_id == version_id, e.c.override_id.is_(None), e.c.key_hash.is_not(None))
        .values(override_id=override)
    )


def set_approval(conn: Connection, version_id: str, approval: str | None) -> None:
    """Record a version's PSI approval (draft | pending | approved) in the catalogue; None leaves it."""
    if approval is not None:
        conn.execute(
            update(plan_versions).where(plan_versions.c.version_id == version_id).values(approval=approval)
        )
