"""The canonical JSON text of a version's large row tables, written straight from SQLite.

Owns the fast way of turning ``plan_series`` rows into artifact text on SQLite: the C module
``app.storage._rowtext`` (built with the package, linked to the system SQLite that the ``sqlite3``
module uses, so it shares that library's file locks) steps through a level's rows on its own read
connection and writes each row's JSON object itself, with no Python object per value. The text is byte
for byte what ``codec_series`` makes from the same rows (sorted keys, the number rule: whole numbers as
integers), which the tests check on every level of a real plan and on random plans.

It is an accelerator, never the only way: :func:`level_texts` makes a level only when every value fits
the simple cases (whole numbers below 2**53, strings without a character JSON escapes, nulls only where
the row shape allows them, ``seq`` exactly 0..n-1, no leftover keys) and leaves out any other level —
or all of them where the C module was not built. Callers decode those the usual way. The rollback, its
caller, also checks the texts against the version's certified artifacts digest before writing them.

:func:`rows_texts` does the same for the rows digest: the text orjson writes for a level's list of row
tuples, which is what ``app.storage.digests`` hashes, so ``db check`` rehashes a version's rows without a
Python object per value.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

import orjson

from app.storage.codec_series import LEVEL_COLUMNS, LEVELS, Level

try:
    from app.storage import _rowtext
except ImportError:  # not built here (no compiler or SQLite headers): the codec decodes row by row
    _rowtext = None

#: The C writer's kind letter of each row shape of ``app.planning.documents``.
_KIND = {"num": "n", "num?": "N", "int": "i", "bool": "b", "str": "s", "str?": "S"}
_LEVELS = {level.name: level for level in LEVELS}


def built() -> bool:
    """Whether the C module is there (the package was built with a compiler and SQLite's headers)."""
    return _rowtext is not None


@functools.cache
def _plan(name: str) -> tuple[str, str, tuple[int, ...], tuple[bytes, ...], int, int]:
    """The query and the field list of a level: (sql, kinds, columns, literals, week, period)."""
    level: Level = _LEVELS[name]
    keys = level.keys
    sql = _rows_sql(name)
    order = sorted(range(len(keys)), key=keys.__getitem__)
    kinds = "".join(_KIND[level.shape[keys[j]]] for j in order)
    columns = tuple(1 + j for j in order)
    literals = tuple(
        (b"{" if i == 0 else b",") + orjson.dumps(keys[j]) + b":" for i, j in enumerate(order)
    ) + (b"}",)
    week = 1 + keys.index("week") if level.week_at_period else -1
    period = 1 + keys.index("period") if level.week_at_period else -1
    return sql, kinds, columns, literals, week, period


def level_texts(path: str | Path, version_id: str, levels: Iterable[str]) -> dict[str, tuple[orjson.Fragment, int]]:  # fmt: skip
    """``{level: (canonical JSON text of its rows, row count)}`` for those of ``levels`` the C writer
    could make from the version's rows in the SQLite file ``path``; the others are left out."""
    if _rowtext is None:
        return {}
    made: dict[str, tuple[orjson.Fragment, int]] = {}
    for name in levels:
        sql, kinds, columns, literals, week, period = _plan(name)
        result = _rowtext.level_text(str(path), version_id, name, sql, kinds, columns, literals, week, period)
        if result is not None:
            text, rows = result
            made[name] = (orjson.Fragment(text), rows)
    return made


def rows_texts(path: str | Path, version_id: str, levels: Iterable[str]) -> dict[str, tuple[bytes, int]]:
    """``{level: (the text orjson writes for its list of row tuples, row count)}``, rows in
    ``LEVEL_COLUMNS`` order and ``seq`` order as the plan store reads them, for those of ``levels``
    the C writer could make (the rows digest hashes these texts); the others are left out."""
    if _rowtext is None:
        return {}
    made: dict[str, tuple[bytes, int]] = {}
    for name in levels:
        result = _rowtext.rows_json(str(path), version_id, name, _rows_sql(name))
        if result is not None:
            made[name] = result
    return made


@functools.cache
def _rows_sql(name: str) -> str:
    return (
        f"SELECT {', '.join(LEVEL_COLUMNS[name])} FROM plan_series "
        "WHERE version_id = ? AND level = ? ORDER BY seq"
    )
