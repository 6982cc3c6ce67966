"""SQL that reads a ``plan_series`` field whatever row of the layout holds it.

The PlanRepository stores each fact once (``app.storage.codec_series``): an item's constants sit on the
first of its MRP rows (``Level.carried``), and a plan_final row whose planned part equals the mrp row
with the same ``seq`` holds only what capacity reconciliation adds (``Level.borrowed``). A reader that
pages through rows in SQL asks this module for the expression of a field instead of its bare column,
so it gets the value the codec would decode. Versions written before facts were stored once hold every
value on every row; the expressions give those values back unchanged.

Builds expressions only; it runs no query and decodes nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, select

from app.storage.codec_series import LEVELS, Level
from app.storage.schema import plan_series

_LEVEL = {level.name: level for level in LEVELS}


def field_value(level: Level, key: str) -> Any:
    """The value of row key ``key`` of ``level`` for the ``plan_series`` row being selected."""
    column = level.columns_of.get(key, key)
    own = plan_series.c[column]
    if key in level.borrowed and level.base:
        base = _LEVEL[level.base]
        return func.coalesce(own, _base_value(base, column, key in base.carried))
    if key in level.carried:
        return func.coalesce(own, _carried(level.name, column, inclusive=False))
    return own


def _base_value(base: Level, column: str, carried: bool) -> Any:
    """The base level's value at the same ``seq`` (its carried constants filled in)."""
    if carried:
        return _carried(base.name, column, inclusive=True)
    row = plan_series.alias("base_row")
    return (
        select(row.c[column])
        .where(
            row.c.version_id == plan_series.c.version_id,
            row.c.level == base.name,
            row.c.seq == plan_series.c.seq,
        )
        .scalar_subquery()
    )


def _carried(level: str, column: str, *, inclusive: bool) -> Any:
    """The value of ``column`` on the nearest row of ``level`` at or before this row's ``seq`` that
    holds one (the version/level/seq index walks back from it; an item's rows are contiguous)."""
    row = plan_series.alias("carrier")
    before = row.c.seq <= plan_series.c.seq if inclusive else row.c.seq < plan_series.c.seq
    return (
        select(row.c[column])
        .where(
            and_(
                row.c.version_id == plan_series.c.version_id,
                row.c.level == level,
                before,
                row.c[column].is_not(None),
            )
        )
        .order_by(row.c.seq.desc())
        .limit(1)
        .scalar_subquery()
    )
