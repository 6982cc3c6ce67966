"""Where a family's or an item's rows lie in a level of ``plan_series`` (table ``plan_series_spans``).

``plan_series`` is keyed by (version, level, seq), and a level's rows come family by family and item by
item. A span is one run of consecutive rows holding the same ``group_key`` (kind ``group``) or
``item_key`` (kind ``item``): ``first_seq`` to ``last_seq``. The plan store writes a version's spans with
its rows (:func:`spans_of`) and deletes them with its rows; pages about one family or a few items ask
:func:`seq_ranges` where to read, then read those key ranges and still test the key itself, so a span
can only narrow a read, never add a row of another family or item.

A version stored before spans existed has none for a level: :func:`seq_ranges` then answers None and the
caller reads the level by scanning it, as before.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import groupby
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, bindparam, select

from app.storage.db import fetch_tuples
from app.storage.schema import plan_series, plan_series_spans

#: The levels read by family or by item, and the kinds of span kept for each.
SPANNED: Mapping[str, tuple[str, ...]] = {
    "aggregate": ("group",),
    "det": ("group", "item"),
    "mrp": ("item",),
    "mrp_final": ("item",),
}
KEY_COLUMN = {"group": "group_key", "item": "item_key"}
COLUMNS = ("level", "key_kind", "key", "first_seq", "last_seq")

Span = tuple[str, str, str, int, int]


def spans_of(level: str, names: Sequence[str], rows: Sequence[Sequence[Any]]) -> Iterator[Span]:
    """The spans of one level's rows (tuples in ``names`` order, in ``seq`` order): one per run of
    consecutive rows with the same key, for each kind :data:`SPANNED` keeps. Rows without the key are
    in no span."""
    if not rows or level not in SPANNED:
        return
    seq_at = names.index("seq")
    for kind in SPANNED[level]:
        column = KEY_COLUMN[kind]
        if column not in names:
            continue
        for key, run in groupby(rows, itemgetter(names.index(column))):
            first = next(run)
            last = deque(run, maxlen=1)  # noqa: B031 - the rest of the run after its first row
            if key is not None:
                yield (level, kind, key, first[seq_at], (last[0] if last else first)[seq_at])


def seq_ranges(
    conn: Connection, version_id: str, level: str, kind: str, keys: Iterable[str]
) -> dict[str, list[tuple[int, int]]] | None:
    """Per key, the ``seq`` ranges of its rows in the version's level (empty for a key with none), or
    None when the version has no spans for that level and kind (stored before they existed)."""
    wanted = list(dict.fromkeys(keys))
    s = plan_series_spans.c
    found = conn.execute(
        select(s.key, s.first_seq, s.last_seq)
        .where(s.version_id == version_id, s.level == level, s.key_kind == kind, s.key.in_(wanted))
        .order_by(s.key, s.first_seq)
    ).all()
    if not found:
        kept = conn.execute(
            select(s.first_seq)
            .where(s.version_id == version_id, s.level == level, s.key_kind == kind)
            .limit(1)
        ).first()
        if kept is None:
            return None
    out: dict[str, list[tuple[int, int]]] = {key: [] for key in wanted}
    for key, first, last in found:
        out[key].append((first, last))
    return out


def read_rows(
    conn: Connection,
    shape: tuple,
    columns: Callable[[], Sequence[Any]],
    version_id: str,
    level: str,
    kind: str,
    ranges: Mapping[str, list[tuple[int, int]]],
) -> list[tuple[Any, ...]]:
    """The ``columns()`` of the rows of ``ranges`` (from :func:`seq_ranges`), in ``seq`` order, as
    the driver's tuples: one key-range read per span (a disjunction of ranges would make SQLite scan
    the level), each also testing the key itself. ``shape`` names what ``columns()`` gives: the
    statement is built and compiled once per shape."""
    key_column = plan_series.c[KEY_COLUMN[kind]]

    def build() -> Any:
        return (
            select(*columns())
            .where(
                plan_series.c.version_id == bindparam("vid"),
                plan_series.c.level == bindparam("level"),
                plan_series.c.seq.between(bindparam("first"), bindparam("last")),
                key_column == bindparam("key"),
            )
            .order_by(plan_series.c.seq)
        )

    out: list[tuple[Any, ...]] = []
    for first, last, key in sorted((f, la, k) for k, found in ranges.items() for f, la in found):
        params = {"vid": version_id, "level": level, "first": first, "last": last, "key": key}
        out.extend(fetch_tuples(conn, ("span", kind, *shape), build, params))
    return out
