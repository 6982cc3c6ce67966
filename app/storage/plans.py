"""The plan store: the one write path and read path of plan versions (SPEC 4.3).

Owns writing a version in its storage mode — artifacts, PlanRepository rows or both — in ONE
transaction and in bulk (``executemany`` on SQLite, ``COPY`` on PostgreSQL), reading it back with the
mode's fallback rule, the version catalogue (``plan_versions``) and marking failed writes. Documents
and rows are built only by the two codecs; this module moves them.

``files`` mode never touches the PlanRepository content tables (``plan_series``, ``plan_kpis``,
``plan_overrides``, ``plan_override_events``): not to write, not to read.

It is the only writer of plan content: besides whole versions, the upkeep writes (the runbook's
artifact helper, backfill, retention, KPI trimming, failed job versions) and PSI state each have their
section below, so no other module holds an INSERT, UPDATE or DELETE of a content table.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.errors import EncodingMissing, PlanNotFound, StorageError, VersionConflict
from app.planning import derive, psi
from app.planning import documents as docs
from app.planning.model import DERIVED_ARTIFACTS, PlanContent
from app.storage import codec_artifacts, codec_series, digests, modes, ready_copy, spans, texts_child
from app.storage.codec_series import PSI_OVERRIDES, PSI_STATE
from app.storage.db import get_engine, insert_for, now_ms, refresh_statistics, write_turn
from app.storage.schema import (
    plan_artifacts,
    plan_kpis,
    plan_override_events,
    plan_overrides,
    plan_ready_copies,
    plan_series,
    plan_series_spans,
    plan_versions,
    plan_write_generations,
)
from app.storage.settings import effective_mode, storage_pin

#: Called after a write attempt: (mode, seconds, error kind or None). The service hooks metrics here.
WriteObserver = Callable[[str, float, str | None], None]
_observers: list[WriteObserver] = []


class _KeptGrids:
    """The base grids of the last few families read from rows (a page of a family's grid, the next
    page, an edit and the page after it read the same base values). Grids are never changed once made;
    a new rows generation is a new key."""

    ENTRIES = 8

    def __init__(self) -> None:
        self.grids: OrderedDict[tuple, psi.Grid] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple) -> psi.Grid | None:
        with self.lock:
            grid = self.grids.get(key)
            if grid is not None:
                self.grids.move_to_end(key)
            return grid

    def put(self, key: tuple, grid: psi.Grid) -> None:
        with self.lock:
            self.grids[key] = grid
            while len(self.grids) > self.ENTRIES:
                self.grids.popitem(last=False)


_GRIDS = _KeptGrids()


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
    #: The artifact texts as stored, UTF-8 (empty in ``db`` mode), for a caller that also writes them out.
    texts: dict[str, bytes] = field(default_factory=dict, repr=False)


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
        modes.check_mode(mode)
        started = time.perf_counter()
        vid = content.version_id
        maker = None
        try:
            if modes.uses_artifacts(mode):
                codec_artifacts.check(content)
                maker = _texts_maker(content, mode)
            rows = codec_series.encode(content) if modes.uses_rows(mode) else None
            rows_digest = (
                digests.rows_digest(rows.levels, rows.kpis, canonical=rows.canonical)
                if rows is not None
                else None
            )
            # the texts are made inside the transaction, once the rows are stored and let go (below), so
            # a large plan never holds both encodings in memory at once, and each is stored as the next
            # is made; a large both-mode plan's texts are made meanwhile by a child process instead
            texts: dict[str, bytes] = {}
            artifacts_digest = None
        except ValueError as exc:
            if maker is not None:
                maker.close()
            self._failed(vid, mode, started, "encode", exc, content, input_label, note, parent_version_id)
            raise StorageError(f"plan {vid} could not be encoded: {exc}") from exc
        ts = now_ms()
        try:
            with (
                contextlib.closing(maker) if maker is not None else contextlib.nullcontext(),
                write_turn(self.engine),
                self.engine.begin() as conn,
            ):
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
                with digests.bulk_insert_generations(conn, vid, _content_tables(mode)):
                    if rows is not None:
                        self._insert_rows(conn, vid, rows, ts)
                        self._insert_psi(conn, vid, rows)
                        rows.release()
                    if modes.uses_artifacts(mode):
                        made = maker if maker is not None else codec_artifacts.iter_bytes(content)
                        texts = self._insert_artifacts_as_made(conn, vid, iter(made), ts)
                        artifacts_digest = digests.artifacts_digest(texts) if texts else None
                set_approval(conn, vid, codec_series.psi_approval(content))
                if before_commit:
                    before_commit(conn)
                generation = self._seal_write(conn, vid, rows_digest, artifacts_digest)
        except VersionConflict:
            raise
        except Exception as exc:
            self._failed(
                vid, mode, started, type(exc).__name__, exc, content, input_label, note, parent_version_id
            )
            # a full disk or a busy database keeps its own class (and so its status): the same request
            # may succeed later
            kind = type(exc) if isinstance(exc, StorageError) else StorageError
            raise kind(f"plan {vid} was not stored ({mode}): {exc}") from exc
        refresh_statistics(self.engine, plan_series.name, series_rows)
        seconds = time.perf_counter() - started
        self._notify(mode, seconds, None)
        if mode == "db":
            self._schedule_ready_copy(content, generation)
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
        conn.execute(delete(plan_series_spans).where(plan_series_spans.c.version_id == version_id))
        conn.execute(delete(plan_kpis).where(plan_kpis.c.version_id == version_id))

    def mark_failed(self, version_id: str, error: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(plan_versions)
                .where(plan_versions.c.version_id == version_id)
                .values(status="failed", error=error[:2000], updated_at=now_ms())
            )

    def delete_version(self, version_id: str) -> None:
        """Delete a version from every encoding (``PlanNotFound`` when there is none)."""
        with self.engine.connect() as conn:
            self._require(conn, version_id)
        self.purge_versions([version_id])

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

    def previous_version(self, info: VersionInfo) -> VersionInfo | None:
        """The newest ready version planned from the same input set before ``info`` (None if none)."""
        c = plan_versions.c
        earlier = or_(
            c.created_at < info.created_at,
            and_(c.created_at == info.created_at, c.version_id < info.version_id),
        )
        query = (
            select(plan_versions)
            .where(c.status == "ready", c.version_id != info.version_id, earlier)
            .where(c.input_label.is_(None) if info.input_label is None else c.input_label == info.input_label)
            .order_by(c.created_at.desc(), c.version_id.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _info(row) if row is not None else None

    def read_version(self, version_id: str, mode: str | None = None) -> PlanContent:
        """The plan content as the effective mode reads it: ``files`` from artifacts only, ``db`` from rows
        only, ``both`` from rows with a fallback to artifacts for this version."""
        mode = mode or self.effective_mode()
        info = self.get_version(version_id)
        if info.status != "ready":
            raise EncodingMissing(f"plan version {version_id!r} is {info.status}", {"status": info.status})
        content = None
        if modes.uses_rows(mode):
            content = self.read_rows(version_id)
        if content is None and modes.uses_artifacts(mode):
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
        query = select(plan_series.c.seq).where(plan_series.c.version_id == version_id).limit(1)
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
        text (``fragments``); None when the version has no rows. The rows are not checked against their
        digest here: the caller checks the texts."""
        fetched = self._fetch_rows(version_id)
        if fetched is None:
            return None
        head, levels, kpis, overrides, events = fetched
        params = json.loads(head.params_json) if head.params_json else {}
        return codec_series.decode(
            version_id, params, head.schema_version, levels, kpis,
            overrides=overrides, events=events, approval=head.approval, fragments=True,
        )  # fmt: skip

    def rows_digest_now(self, version_id: str) -> str | None:
        """The digest of the version's content rows as stored now (None when it has none); nothing is
        decoded."""
        fetched = self._fetch_rows(version_id, psi=False)
        if fetched is None:
            return None
        return self._digest_of_read(fetched[1], fetched[2])

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

    def _fetch_rows(self, version_id: str, psi: bool = True) -> tuple[Any, dict[str, list[tuple]], list[tuple], list, list] | None:  # fmt: skip
        """The catalogue head and the raw rows of a version, one level at a time in ``LEVEL_COLUMNS``
        order, straight from the DBAPI cursor (None when it has no rows)."""
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
        with write_turn(self.engine), self.engine.begin() as conn:
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

    # --- write generations and the ready copy --------------------------------------------------
    # The database triggers of revision 0005 raise a version's generations on every content write;
    # ``app.storage.digests`` says what they certify, ``app.storage.ready_copy`` when copies are made.

    def certification(self, version_id: str, conn: Connection | None = None) -> digests.Certification:
        """The version's recorded digests and generations (one catalogue read)."""
        with self._read(conn) as c:
            found = digests.certification(c, version_id)
        if found is None:
            raise PlanNotFound(f"plan version {version_id!r} does not exist")
        return found

    def _seal_write(self, conn: Connection, version_id: str, rows: str | None, artifacts: str | None) -> int:
        """End a version's write: give it its counters (after its rows, so their triggers found none to
        raise) and certify the digests just recorded at them. Returns the rows generation."""
        digests.ensure_generations(conn, version_id)
        digests.record(conn, version_id, rows=rows, artifacts=artifacts)
        digests.certify_generations(conn, version_id)  # what the mode did not write is certified absent
        return self.certification(version_id, conn).rows_generation or 0

    def _schedule_ready_copy(self, content: PlanContent, generation: int) -> None:
        """After a db-mode write: its ready copy, encoded from the same content off the request's path.
        A both-mode version's stored artifacts are its copy already, certified with its rows."""
        ready_copy.schedule(
            self, content.version_id, lambda: codec_artifacts.encode(content, validated=True), generation
        )

    def write_ready_copy(self, version_id: str, texts: ready_copy.Texts, *, rows_generation: int) -> bool:
        """Store ``texts`` (every artifact text, made from the content whose rows were at
        ``rows_generation``) as the version's ready copy, replacing any earlier one, with their digest.

        Refused (False, nothing written) when the rows were written since or their digest is not
        certified, or when the version has a certified artifacts digest the texts do not hash to. The
        catalogue is not changed: the copy carries its own digest and rows generation."""
        value = digests.artifacts_digest(texts)
        bodies = _compressed(texts)
        with write_turn(self.engine), self.engine.begin() as conn:
            before = digests.certification(conn, version_id)
            if before is None or not before.rows_trusted or before.rows_generation != rows_generation:
                return False
            if before.artifacts_digest is not None and before.artifacts_digest != value:
                return False
            self._insert_ready_copy(conn, version_id, bodies, value, rows_generation)
        return True

    def _insert_ready_copy(
        self,
        conn: Connection,
        version_id: str,
        bodies: dict[str, tuple[bytes, int]],
        value: str,
        rows_generation: int,
    ) -> None:
        conn.execute(delete(plan_ready_copies).where(plan_ready_copies.c.version_id == version_id))
        ts = now_ms()
        conn.execute(
            insert(plan_ready_copies),
            [
                {"version_id": version_id, "name": n, "codec": ready_copy.CODEC, "body": body, "text_bytes": size,
                 "artifacts_digest": value, "rows_generation": rows_generation, "created_at": ts}
                for n, (body, size) in bodies.items()
            ],
        )  # fmt: skip

    def ready_copy(self, version_id: str) -> ReadyCopy | None:
        """The version's ready copy (None without one, or one whose rows disagree on what it was made
        from). Raises ``ValueError`` for a body that does not decompress; whether the texts still hash
        to the copy's digest is for the caller to check."""
        c = plan_ready_copies.c
        query = select(c.name, c.codec, c.body, c.artifacts_digest, c.rows_generation).where(
            c.version_id == version_id
        )
        with self.engine.connect() as conn:
            found = conn.execute(query).all()
        if not found or len({(r.artifacts_digest, r.rows_generation) for r in found}) != 1:
            return None
        texts = {r.name: ready_copy.decompress(r.codec, bytes(r.body)) for r in found}
        return ReadyCopy(texts, found[0].artifacts_digest, found[0].rows_generation)

    def ready_copy_texts(self, version_id: str) -> dict[str, bytes]:
        copy = self.ready_copy(version_id)
        return copy.texts if copy is not None else {}

    def has_ready_copy(self, version_id: str) -> bool:
        query = select(plan_ready_copies.c.name).where(plan_ready_copies.c.version_id == version_id).limit(1)
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None

    def replace_artifacts(
        self,
        version_id: str,
        texts: ready_copy.Texts,
        *,
        rows_digest: str,
        artifacts_digest: str,
        keep_ready_copy: bool = False,
    ) -> None:
        """Write ``texts`` over the version's artifacts of the same names and record the certified pair:
        the caller made or verified them as the content of rows hashing to ``rows_digest``, and
        ``artifacts_digest`` is what the version's artifacts hash to once written. ``keep_ready_copy``:
        also store them as the version's ready copy (a version that had none)."""
        bodies = _compressed(texts) if keep_ready_copy else {}
        with write_turn(self.engine), self.engine.begin() as conn:
            self._require(conn, version_id)
            conn.execute(
                delete(plan_artifacts).where(
                    plan_artifacts.c.version_id == version_id, plan_artifacts.c.name.in_(list(texts))
                )
            )
            self._insert_artifacts(conn, version_id, texts, now_ms())
            digests.ensure_generations(conn, version_id)
            if keep_ready_copy:
                generation = digests.certification(conn, version_id).rows_generation or 0
                self._insert_ready_copy(conn, version_id, bodies, digests.artifacts_digest(texts), generation)
            digests.record(conn, version_id, rows=rows_digest, artifacts=artifacts_digest)

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

    def _insert_artifacts(
        self, conn: Connection, version_id: str, texts: Mapping[str, str | bytes], ts: int
    ) -> None:
        """Insert artifact texts, given as text or as its UTF-8 bytes. SQLite takes the bytes as they
        are and stores them as TEXT (``CAST``), so a large text is not decoded into a second copy."""
        if self.dialect == "sqlite":
            _cursor(conn).executemany(
                "INSERT INTO plan_artifacts (version_id, name, json_text, created_at) "
                "VALUES (?, ?, CAST(? AS TEXT), ?)",
                ((version_id, n, t, ts) for n, t in texts.items()),
            )
            return
        conn.execute(
            insert(plan_artifacts),
            [
                {
                    "version_id": version_id,
                    "name": n,
                    "json_text": t if isinstance(t, str) else t.decode(),
                    "created_at": ts,
                }  # fmt: skip
                for n, t in texts.items()
            ],
        )

    def _insert_artifacts_as_made(
        self, conn: Connection, version_id: str, made: Iterator[tuple[str, bytes]], ts: int
    ) -> dict[str, bytes]:
        """Insert each artifact text on a second thread while this one makes the next, and return them
        all. The database copies a text's pages without holding the interpreter lock, so on two cores
        storing one artifact overlaps making the next; the connection is used by one thread at a time."""
        texts: dict[str, bytes] = {}
        with ThreadPoolExecutor(1, thread_name_prefix="scpln-artifacts") as writer:
            pending: Future | None = None
            for name, body in made:
                texts[name] = body
                if pending is not None:
                    pending.result()
                pending = writer.submit(self._insert_artifacts, conn, version_id, {name: body}, ts)
            if pending is not None:
                pending.result()
        return texts

    def _insert_rows(self, conn: Connection, version_id: str, rows: codec_series.SeriesRows, ts: int) -> None:
        raw = _cursor(conn)
        # each row is made as the insert takes it, so a level is never held twice; SQLite binds each
        # NULL through the driver's adaptation (several times a number's cost), so there a run of
        # rows leaves out the columns it has NULL; COPY takes whole rows
        parts = rows.series_parts(version_id, ts, split_nulls=self.dialect == "sqlite")
        for shared, columns, values in parts:
            bulk_insert(raw, self.dialect, "plan_series", columns, values, shared)
        found = [
            span
            for level, level_rows in rows.levels.items()
            for span in spans.spans_of(level, codec_series.LEVEL_COLUMNS[level], level_rows)
        ]
        if found:
            bulk_insert(
                raw, self.dialect, "plan_series_spans", spans.COLUMNS, found, {"version_id": version_id}
            )
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

    # ============================================================================================
    # Upkeep writes: the runbook's artifact helper, backfill, maintenance, jobs and PSI. Every write
    # of plan content outside a whole-version write is one of these methods, so no other module
    # holds INSERT, UPDATE or DELETE of a content table.
    # ============================================================================================

    def upsert_artifact(self, version_id: str, name: str, text: str, document: Any = None) -> None:
        """Store one artifact text as given (the runbook's ``app.db.upsert_plan_artifact``), replacing
        it. A version without a catalogue row gets one (ready, files, draft) from the parsed
        ``document``'s header; the artifacts digest is cleared, since no digest vouches for this text."""
        ts = now_ms()
        dialect_insert = insert_for(self.engine)
        with self.engine.begin() as conn:
            conn.execute(
                dialect_insert(plan_versions)
                .values(_legacy_version_row(version_id, document, ts))
                .on_conflict_do_nothing(index_elements=["version_id"])
            )
            conn.execute(
                update(plan_versions)
                .where(plan_versions.c.version_id == version_id)
                .values(updated_at=ts, artifacts_digest=None)
            )
            self._upsert_artifacts(conn, version_id, {name: text}, ts)

    def backfill_rows(
        self, content: PlanContent, derived: Sequence[str] = (), *, force: bool = False
    ) -> int | None:
        """Write a version's rows from the content of its artifacts (backfill), in one transaction:
        the rows (:meth:`write_rows`), the ``derived`` artifacts recomputed for it, the certified
        digest pair, and ``storage_mode`` ``both``. Returns the series rows written, or None when the
        version is no longer wanted: not ready, or (without ``force``) another run gave it rows."""
        vid = content.version_id
        with write_turn(self.engine), self.engine.begin() as conn:
            status = conn.execute(
                select(plan_versions.c.status).where(plan_versions.c.version_id == vid)
            ).scalar_one_or_none()
            if status != "ready" or (not force and self.has_rows(vid, conn)):
                return None
            written = self.write_rows(content, conn)
            if derived:
                part = PlanContent(vid, content.params, {n: content.documents[n] for n in derived})
                self._insert_artifacts(conn, vid, codec_artifacts.encode(part), now_ms())
            self.certify(conn, vid)  # the rows were just made from these artifacts
            conn.execute(
                update(plan_versions)
                .where(plan_versions.c.version_id == vid)
                .values(storage_mode="both", updated_at=now_ms())
            )
        return written

    def replay_psi(self, version_id: str, *, dry_run: bool = False) -> bool:
        """Bring PSI decisions recorded only in a version's artifacts into its rows: while the hub was
        pinned to ``files`` the planners' edits, locks and approvals went to ``psi_overrides.json`` and
        ``psi_state.json`` alone. When the rows' events are the start of the artifacts' events and the
        artifacts hold more, the version's ``plan_overrides`` and ``plan_override_events`` rows (and its
        approval) are replaced by the artifacts' in one transaction. Returns whether it did (or, with
        ``dry_run``, would). Rows that are not behind the artifacts — equal, or a history of their own —
        are left for ``db check`` to judge."""
        names = [PSI_OVERRIDES, PSI_STATE]
        with self.engine.begin() as conn:
            texts = self._artifact_texts(conn, version_id, names)
            if not texts or not self.has_rows(version_id, conn):
                return False
            documents = {n: docs.parse_artifact(n, t) for n, t in texts.items()}
            rows = codec_series.encode(PlanContent(version_id, {}, documents))
            _, stored_events = read_psi_rows(conn, version_id)
            events = [tuple(e) for e in rows.events]
            behind = len(events) > len(stored_events) and events[: len(stored_events)] == stored_events
            if not behind:
                return False
            if dry_run:
                return True
            o, e = plan_overrides, plan_override_events
            conn.execute(delete(e).where(e.c.version_id == version_id))
            conn.execute(delete(o).where(o.c.version_id == version_id))
            self._insert_psi(conn, version_id, rows)
        return True

    def purge_versions(self, version_ids: Sequence[str]) -> None:
        """Delete versions from every encoding and the catalogue in one transaction (retention)."""
        ids = list(version_ids)
        with write_turn(self.engine), self.engine.begin() as conn:
            # children first: this does not depend on foreign-key cascades being enabled; the write
            # counters go before the content, so the generation triggers find none to raise row by row
            for table in (
                plan_write_generations,
                plan_ready_copies,
                plan_override_events,
                plan_overrides,
                plan_series_spans,
                plan_series,
                plan_kpis,
                plan_artifacts,
                plan_versions,
            ):
                conn.execute(delete(table).where(table.c.version_id.in_(ids)))

    def trim_kpis(self, version_id: str, kept_bucket: str, final: PlanContent | None = None) -> int:
        """Keep only the ``kept_bucket`` KPI rows of a version and, in the same transaction, replace its
        ``plan_final.json`` with ``final`` (its KPIs trimmed alike) so both encodings keep holding one
        plan. Returns the KPI rows deleted."""
        k = plan_kpis.c
        with self.engine.begin() as conn:
            deleted = conn.execute(
                delete(plan_kpis).where(k.version_id == version_id, k.bucket_type != kept_bucket)
            ).rowcount
            kept = conn.execute(select(k.id, k.seq).where(k.version_id == version_id).order_by(k.seq)).all()
            for position, (row_id, seq) in enumerate(kept):
                if seq != position:  # the codec reads KPI rows by a gap-free seq
                    conn.execute(update(plan_kpis).where(k.id == row_id).values(seq=position))
            if final is not None:
                self.write_artifacts(final, conn)
        return deleted

    def fail_if_running(self, version_id: str | None, error: str, conn: Connection | None = None) -> bool:
        """Mark a version failed unless it already finished (ready or failed); True when it was marked.
        ``conn``: inside the caller's transaction (a job's own row changes with it)."""
        if not version_id:
            return False
        with self._tx(conn) as c:
            changed = c.execute(
                update(plan_versions)
                .where(plan_versions.c.version_id == version_id, plan_versions.c.status == "running")
                .values(status="failed", error=error[:2000], updated_at=now_ms())
            ).rowcount
        return changed == 1

    @contextmanager
    def psi_session(
        self, version_id: str, *, for_update: bool, conn: Connection | None = None
    ) -> Iterator[PsiSession]:
        """A version's PSI state in one transaction (``conn``: the caller's), read and written where
        :func:`app.storage.modes.psi_mode` says. ``for_update`` takes the version's write lock first, so PSI changes of
        one version serialize; without it the session only reads."""
        pin = storage_pin(self.engine)
        if conn is not None:
            yield PsiSession.open(self, conn, version_id, for_update, pin)
            return
        with self.engine.begin() if for_update else self.engine.connect() as c:
            yield PsiSession.open(self, c, version_id, for_update, pin)

    def _upsert_artifacts(self, conn: Connection, version_id: str, texts: dict[str, str], ts: int) -> None:
        for name, text in texts.items():
            statement = insert_for(self.engine)(plan_artifacts).values(
                version_id=version_id, name=name, json_text=text, created_at=ts
            )
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["version_id", "name"],
                    set_={
                        "json_text": statement.excluded.json_text,
                        "created_at": statement.excluded.created_at,
                    },
                )
            )


@dataclass(frozen=True)
class ReadyCopy:
    """A version's ready copy: UTF-8 texts by artifact name, the digest recorded for them, and the rows
    generation they were made from."""

    texts: dict[str, bytes]
    artifacts_digest: str
    rows_generation: int


def _compressed(texts: ready_copy.Texts) -> dict[str, tuple[bytes, int]]:
    """Each text compressed for the ready copy, with its UTF-8 length."""
    out = {}
    for name, text in texts.items():
        body = text.encode("utf-8") if isinstance(text, str) else text
        out[name] = (ready_copy.compress(body), len(body))
    return out


class _Borrowed:
    """Use a caller's connection as a context manager without closing or committing it."""

    def __init__(self, conn: Connection):
        self.conn = conn

    def __enter__(self) -> Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        return None


def _content_tables(mode: str) -> list[str]:
    """The content tables a whole version's write in ``mode`` inserts into: the rows tables and/or
    ``plan_artifacts`` (never the ready copy, which is written after the commit)."""
    wanted = {"rows_generation"} if modes.uses_rows(mode) else set()
    wanted |= {"artifacts_generation"} if modes.uses_artifacts(mode) else set()
    return [table for table, generation in digests.GENERATION_OF.items() if generation in wanted]


#: Plans with at least this many MRP rows get their artifact texts made by a child process in ``both``
#: mode (``app.storage.texts_child``); below it, starting the child costs more than it saves.
TEXTS_CHILD_MIN_ROWS = 50_000


def _texts_maker(content: PlanContent, mode: str) -> texts_child.TextsChild | None:
    """A child making ``content``'s artifact texts while the rows are stored, when it pays: a ``both``
    write of a large plan, where ``fork`` exists."""
    if not (modes.uses_rows(mode) and texts_child.available()):
        return None
    mrp = content.documents.get("mrp.json")
    rows = mrp.get("rows") if isinstance(mrp, dict) else None
    if rows is None or len(rows) < TEXTS_CHILD_MIN_ROWS:
        return None
    return texts_child.TextsChild(content)


def _cursor(conn: Connection) -> Any:
    """A DBAPI cursor on the connection's own transaction (bulk paths bypass per-row SQLAlchemy work)."""
    return conn.connection.dbapi_connection.cursor()


def bulk_insert(
    cursor: Any,
    dialect: str,
    table: str,
    columns: Sequence[str],
    rows: Iterable[tuple],
    shared: Mapping[str, Any] | None = None,
) -> None:
    """Insert many rows at once: ``executemany`` on SQLite, ``COPY ... FROM STDIN`` on PostgreSQL.
    ``shared``: column -> value that every row takes. SQLite gets them as literals of the statement
    (bound once, not once per row) when each is NULL, an integer or text without a NUL character."""
    if shared and dialect == "sqlite":
        literals = [_sqlite_literal(v) for v in shared.values()]
        if None not in literals:
            cols = ", ".join([*shared, *columns])
            marks = ", ".join([*literals, *("?" * len(columns))])  # type: ignore[list-item]
            cursor.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)
            return
    if shared:  # bound with every row: COPY, or a value SQLite cannot take as a literal
        prefix = tuple(shared.values())
        columns = (*shared, *columns)
        rows = (prefix + tuple(row) for row in rows)
    cols = ", ".join(columns)
    if dialect == "sqlite":
        marks = ", ".join("?" * len(columns))
        cursor.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)
        return
    with cursor.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _sqlite_literal(value: Any) -> str | None:
    """``value`` as an SQLite literal, or None when it is not one that can be written safely."""
    if value is None:
        return "NULL"
    if type(value) is int:
        return str(value)
    if type(value) is str and "\x00" not in value:
        return "'" + value.replace("'", "''") + "'"
    return None


def _schema_version(content: PlanContent) -> int | None:
    doc = content.documents.get("aggregate.json")
    return doc.get("schema_version") if isinstance(doc, dict) else None


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _legacy_version_row(version_id: str, document: Any, ts: int) -> dict[str, Any]:
    """The catalogue row of a version that arrives through the artifact helper alone."""
    params = document.get("params") if isinstance(document, dict) else None
    schema_version = document.get("schema_version") if isinstance(document, dict) else None
    return {
        "version_id": version_id,
        "status": "ready",
        "approval": "draft",
        "storage_mode": "files",
        "created_at": ts,
        "updated_at": ts,
        "params_json": json.dumps(params, sort_keys=True) if isinstance(params, dict) else None,
        "schema_version": schema_version if isinstance(schema_version, int) else None,
    }


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


# =================================================================================================
# PSI state storage: overrides, events, approval and the PSI artifacts of one version, in the mode
# modes.psi_mode() gives. Document and row shapes are the codec's; the editing rules are app.planning.psi's.
# =================================================================================================


class PsiSession:
    """One version's PSI state inside one transaction: its catalogue row, its base grid and its state
    as the mode reads them, and saving what a request changed."""

    def __init__(self, store: PlanStore, conn: Connection, version: VersionInfo, mode: str):
        self.store, self.conn, self.version, self.mode = store, conn, version, mode
        self._parsed: dict[str, list[dict[str, Any]]] = {}  # base artifacts' rows, parsed once

    @classmethod
    def open(
        cls, store: PlanStore, conn: Connection, version_id: str, for_update: bool, pin: str | None
    ) -> PsiSession:
        if for_update:  # the version's write lock: PSI changes of one version serialize
            done = conn.execute(
                update(plan_versions)
                .where(plan_versions.c.version_id == version_id)
                .values(updated_at=now_ms())
            )
            if done.rowcount == 0:
                raise PlanNotFound(f"plan version {version_id!r} does not exist")
        row = conn.execute(select(plan_versions).where(plan_versions.c.version_id == version_id)).first()
        if row is None:
            raise PlanNotFound(f"plan version {version_id!r} does not exist")
        version = _info(row)
        version.approval = version.approval or "draft"
        return cls(store, conn, version, modes.psi_mode(pin, version.storage_mode))

    def grid(self, family: str | None = None) -> psi.Grid:
        """Base rows as the mode reads them: rows (``db``), artifacts (``files``), rows else artifacts.
        ``family``: that family's cells only (a PSI edit never reaches past its family, so a page about
        one family needs no other); from rows, the database selects them."""
        if modes.uses_rows(self.mode):
            key = self._grid_key(family)
            cached = _GRIDS.get(key) if key is not None else None
            if cached is not None:
                return cached
            agg, det = self._series_level("aggregate", family), self._series_level("det", family)
            if agg or det or self.mode == "db":
                grid = psi.Grid.from_rows(agg, det)
                if key is not None and (agg or det):
                    _GRIDS.put(key, grid)
                return grid
        agg, det = self._artifact_rows("aggregate.json"), self._artifact_rows("sku_week.json")
        if family is not None:
            agg, det = [r for r in agg if r["family"] == family], [r for r in det if r["family"] == family]
        return psi.Grid.from_rows(agg, det)

    def _grid_key(self, family: str | None) -> tuple | None:
        """What one family's base grid read from rows is kept under: the database, the version, the
        family and the version's rows generation, which every write to its content tables raises
        (database triggers), so a kept grid is never one the rows no longer hold. None: not kept."""
        if family is None:
            return None
        vid = self.version.version_id
        generation = self.conn.execute(
            select(plan_write_generations.c.rows_generation).where(plan_write_generations.c.version_id == vid)
        ).scalar_one_or_none()
        if generation is None:
            return None
        return (self.store.engine.url.render_as_string(hide_password=True), vid, family, generation)

    def _artifact_rows(self, name: str) -> list[dict[str, Any]]:
        """The rows of a base artifact, parsed once per session."""
        parsed = self._parsed
        if name not in parsed:
            vid = self.version.version_id
            texts = self.store._artifact_texts(self.conn, vid, (name,))
            if name not in texts:
                raise EncodingMissing(
                    f"plan version {vid!r} has no aggregate and detail plan readable in {self.mode!r} mode"
                )
            parsed[name] = json.loads(texts[name])["rows"]
        return parsed[name]

    def families(self) -> list[str]:
        """The plan's families, sorted, from the aggregate level as the mode reads it."""
        if modes.uses_rows(self.mode):
            found = self.conn.execute(
                select(plan_series.c.group_key)
                .where(
                    plan_series.c.version_id == self.version.version_id, plan_series.c.level == "aggregate"
                )
                .distinct()
            ).scalars()
            names = sorted(f for f in found if f is not None)
            if names or self.mode == "db":
                return names
        return sorted({r["family"] for r in self._artifact_rows("aggregate.json")})

    def state(self) -> psi.State:
        """PSI state as the mode reads it; ``both`` falls back to the artifacts when the tables hold none."""
        vid, approval = self.version.version_id, self.version.approval
        if modes.uses_rows(self.mode):
            override_rows, event_rows = read_psi_rows(self.conn, vid)
            if override_rows or event_rows or self.mode == "db":
                entries = [codec_series.override_entry(r) for r in override_rows]
                events = [codec_series.event_entry(r) for r in event_rows]
                return psi.State(psi.by_key(entries), events, approval, "db")
        texts = self.store._artifact_texts(self.conn, vid, (PSI_OVERRIDES, PSI_STATE))
        if not texts:
            return psi.State({}, [], approval, "none")
        overrides = json.loads(texts[PSI_OVERRIDES])["overrides"] if PSI_OVERRIDES in texts else []
        state_doc = json.loads(texts[PSI_STATE]) if PSI_STATE in texts else {}
        return psi.State(
            psi.by_key(overrides),
            list(state_doc.get("events", [])),
            state_doc.get("approval", approval),
            "files",
        )

    def save(self, state: psi.State) -> None:
        """Write what changed in the session's mode, in its transaction, and the approval."""
        vid, conn = self.version.version_id, self.conn
        if modes.uses_rows(self.mode):
            whole = state.source != "db"  # first write into the tables: bring them the whole state
            keys = list(state.overrides) if whole else [k for k in state.overrides if k in state.changed]
            for key in keys:
                values = dict(
                    zip(
                        codec_series.OVERRIDE_COLUMNS,
                        codec_series.override_row(state.overrides[key]),
                        strict=True,
                    )
                )
                stmt = insert_for(self.store.engine)(plan_overrides).values(version_id=vid, **values)
                update_cols = {
                    c: stmt.excluded[c] for c in codec_series.OVERRIDE_COLUMNS if c != "created_at"
                }
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["version_id", "level", "key_hash"], set_=update_cols
                    )
                )
            events = state.events if whole else state.new_events
            if events:
                conn.execute(
                    insert(plan_override_events),
                    [
                        {
                            "version_id": vid,
                            **dict(zip(codec_series.EVENT_COLUMNS, codec_series.event_row(e), strict=True)),
                        }
                        for e in events
                    ],
                )
                link_override_events(conn, vid)
        if modes.uses_artifacts(self.mode):
            documents = {PSI_STATE: codec_series.psi_state_document(vid, state.approval, state.events)}
            if state.overrides:
                documents[PSI_OVERRIDES] = codec_series.psi_overrides_document(
                    vid, list(state.overrides.values())
                )
            texts = {}
            for name, document in documents.items():
                codec_series.validate_document(name, document)
                texts[name] = docs.artifact_text(name, document)
            self.store._upsert_artifacts(conn, vid, texts, now_ms())
        set_approval(conn, vid, state.approval)

    def _series_level(self, level: str, family: str | None = None) -> list[dict[str, Any]]:
        columns = [plan_series.c[c] for c in codec_series.LEVEL_COLUMNS[level]]
        vid = self.version.version_id
        where = [plan_series.c.version_id == vid, plan_series.c.level == level]
        if family is not None:  # both PSI levels keep the family in group_key: read its span
            ranges = spans.seq_ranges(self.conn, vid, level, "group", [family])
            if ranges is not None:
                found = spans.read_rows(
                    self.conn, ("psi", level), lambda: columns, vid, level, "group", ranges
                )
                return codec_series.decode_level_rows(level, found, part=True)
            where.append(plan_series.c.group_key == family)  # stored before spans: scan the level
        rows = self.conn.execute(select(*columns).where(*where).order_by(plan_series.c.seq))
        return codec_series.decode_level_rows(level, [tuple(r) for r in rows], part=family is not None)
