"""The planning domain's types: inputs, calendar, parameters, stage results and plan content.

Owns the shapes every stage agrees on. Quantities live in numpy arrays indexed by the position of a
name in the matching list (``families``, ``skus``, ``items``, ``calendar.periods``, ``calendar.weeks``,
``calendar.buckets``). In ``int`` rounding mode quantity arrays are ``int64``; otherwise ``float64``.

Must not import database, web or file code.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np

from app.errors import InputError, Problem  # noqa: F401 - the engine raises them; re-exported for its callers

RoundMode = Literal["int", "none", "dec1", "dec2"]
LtUnit = Literal["day", "week"]
AnchorPolicy = Literal["DET_near", "AGG_far", "blend"]
Carryover = Literal["none", "prev", "next", "both", "auto"]

SCHEMA_VERSION = 1
VERSION_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

#: The artifacts that hold the whole plan (SPEC 4.2).
CORE_ARTIFACTS = ("aggregate.json", "sku_week.json", "mrp.json", "plan_final.json", "report.csv")
#: Artifacts recomputed from the core five when absent.
DERIVED_ARTIFACTS = ("reconciliation_log.json", "exceptions.json")
PSI_ARTIFACTS = ("psi_overrides.json", "psi_state.json")
PLAN_ARTIFACTS = CORE_ARTIFACTS + DERIVED_ARTIFACTS


@dataclass(frozen=True)
class PlanParams:
    """Parameters of one plan run; stored verbatim as ``params`` in every artifact."""

    round_mode: RoundMode = "int"
    lt_unit: LtUnit = "day"
    prebuild_months: int = 0
    prebuild_weeks: int = 4
    cutover_date: str | None = None  # YYYY-MM-DD
    recon_window_days: int = 0
    anchor_policy: AnchorPolicy | None = None
    carryover: Carryover = "none"
    carryover_split: float = 0.5
    tol_abs: float = 1e-6
    tol_rel: float = 1e-6

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PlanParams:
        data = dict(data or {})
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known and v is not None})

    @property
    def is_int(self) -> bool:
        return self.round_mode == "int"

    @property
    def decimals(self) -> int | None:
        """Decimal places quantities are kept to; None means unrounded floats."""
        return {"int": 0, "dec1": 1, "dec2": 2, "none": None}[self.round_mode]

    @property
    def qty_dtype(self) -> type:
        return np.int64 if self.is_int else np.float64


@dataclass(frozen=True)
class Bucket:
    """A (period, ISO week) cell; an ISO week straddling two months is two buckets."""

    period: str  # YYYY-MM
    week: str  # YYYY-Www (ISO)
    start_date: dt.date
    end_date: dt.date  # inclusive
    weight: float  # days of the week inside the period (calendar weight)

    @property
    def key(self) -> str:
        """Bucket key as stored in plan_series: ``2026-W05@2026-01``."""
        return f"{self.week}@{self.period}"


@dataclass
class Calendar:
    """Ordered periods and buckets. ``weeks`` are the distinct ISO weeks in date order."""

    periods: list[str]
    period_start: list[dt.date]
    period_end: list[dt.date]
    buckets: list[Bucket]
    weeks: list[str] = field(init=False)
    bucket_period_idx: np.ndarray = field(init=False)  # [B] index into periods
    bucket_week_idx: np.ndarray = field(init=False)  # [B] index into weeks
    bucket_weight: np.ndarray = field(init=False)  # [B] float
    derived: bool = False

    def __post_init__(self) -> None:
        weeks: list[str] = []
        for b in self.buckets:
            if not weeks or weeks[-1] != b.week:
                if b.week in weeks:
                    raise ValueError(f"week {b.week} appears in non-adjacent buckets")
                weeks.append(b.week)
        self.weeks = weeks
        pidx = {p: i for i, p in enumerate(self.periods)}
        widx = {w: i for i, w in enumerate(weeks)}
        self.bucket_period_idx = np.array([pidx[b.period] for b in self.buckets], dtype=np.int64)
        self.bucket_week_idx = np.array([widx[b.week] for b in self.buckets], dtype=np.int64)
        self.bucket_weight = np.array([b.weight for b in self.buckets], dtype=np.float64)

    @property
    def n_periods(self) -> int:
        return len(self.periods)

    @property
    def n_weeks(self) -> int:
        return len(self.weeks)

    @property
    def n_buckets(self) -> int:
        return len(self.buckets)

    def week_start(self, w: int) -> dt.date:
        """Monday of week index ``w``."""
        y, wk = self.weeks[w].split("-W")
        return dt.date.fromisocalendar(int(y), int(wk), 1)

    def week_period_index(self) -> np.ndarray:
        """Period index of each week: the period holding its Monday.

        A week whose Monday lies outside every period (the horizon's first week, or a gap in the
        calendar) belongs to the period of its first bucket.
        """
        _, first_bucket = np.unique(self.bucket_week_idx, return_index=True)
        fallback = self.bucket_period_idx[first_bucket].tolist()
        out = []
        for w in range(self.n_weeks):
            monday = self.week_start(w)
            hits = [p for p in range(self.n_periods) if self.period_start[p] <= monday <= self.period_end[p]]
            out.append(hits[0] if hits else fallback[w])
        return np.asarray(out, dtype=np.int64)


@dataclass
class PlanInputs:
    """A validated input set, indexed for vectorized planning."""

    label: str
    calendar: Calendar
    families: list[str]
    demand: np.ndarray  # [F, P] family demand per period (float64 as read)
    skus: list[str]  # finished goods, grouped by family in mix order
    sku_family: np.ndarray  # [S] family index
    sku_share: np.ndarray  # [S] share renormalized to sum 1 within the family
    workcenters: list[str]
    capacity: np.ndarray  # [W, P] units per period
    routing: np.ndarray | None  # [F, W] load per unit; None = pooled capacity, every family 1:1
    items: list[str]  # skus first (same order), then components
    item_lt: np.ndarray  # [I] lead time in lt_unit
    item_lot: np.ndarray  # [I] order multiple >= 1
    item_moq: np.ndarray  # [I]
    item_safety_stock: np.ndarray  # [I]
    item_max_lot: np.ndarray  # [I] 0 = no maximum
    item_unit_cost: np.ndarray  # [I] 0 when unknown
    on_hand: np.ndarray  # [I] opening on-hand
    scheduled_receipts: np.ndarray  # [I, Wk] open POs by week index
    bom_parent: np.ndarray  # [E] item index
    bom_child: np.ndarray  # [E] item index
    bom_qty: np.ndarray  # [E]
    bom_scrap: np.ndarray  # [E]
    period_cost: np.ndarray | None = None  # [P]
    period_score: np.ndarray | None = None  # [P]
    warnings: list[str] = field(default_factory=list)

    @property
    def n_fg(self) -> int:
        return len(self.skus)

    @cached_property
    def parents(self) -> dict[int, list[int]]:
        """Child item index -> its distinct parent item indexes, ascending: the bill of material read
        upwards (pegging), built once and only when asked for."""
        from app.planning.pegging import parents_of

        return parents_of(self.bom_parent, self.bom_child)


@dataclass
class AggregateResult:
    """Family x month plan (SPEC 3.1). Arrays are [F, P] unless noted."""

    demand: np.ndarray
    supply: np.ndarray
    backlog: np.ndarray  # unserved at the end of the period, carried to the next
    inventory_open: np.ndarray
    inventory_close: np.ndarray
    prebuild: np.ndarray
    capacity_total: np.ndarray  # [P] pooled capacity (sum over workcenters)
    capacity_used: np.ndarray  # [P] load placed (sum over workcenters)
    unserved_end: np.ndarray  # [F] backlog left after the horizon


@dataclass
class AllocationResult:
    """SKU x bucket plan (SPEC 3.2). Arrays are [S, B]."""

    demand: np.ndarray
    supply: np.ndarray
    backlog: np.ndarray


#: Per measure (``demand``, ``supply``): a cell mask [S, B] and the cells' values [S, B].
CellValues = dict[str, tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Decisions:
    """A planner's PSI decisions as the pipeline takes them (SPEC 6; ``docs/planning.md`` §6).

    ``held``: cells fixed at their values whatever the anchor policy — detail cells the planner locked,
    and every detail cell of a family total the planner set or locked at the aggregate level.
    ``edited``: detail values the planner typed without locking them; they replace the allocation's
    values, and an anchor policy then weighs them against the aggregate like any detail.
    ``firm``: [S, B] the locked detail cells, whose supply is a firm planned order in the master
    schedule (received as it is, not lot-sized)."""

    held: CellValues = field(default_factory=dict)
    edited: CellValues = field(default_factory=dict)
    firm: np.ndarray | None = None

    def apply_edits(self, alloc: AllocationResult) -> AllocationResult:
        """The allocation with the unlocked edited values in place of the computed ones."""
        if not self.edited:
            return alloc
        arrays = {"demand": alloc.demand, "supply": alloc.supply}
        for measure, (mask, values) in self.edited.items():
            arrays[measure] = np.where(mask, values, arrays[measure]).astype(arrays[measure].dtype)
        return AllocationResult(arrays["demand"], arrays["supply"], alloc.backlog)


@dataclass
class MrpResult:
    """Item x week MRP (SPEC 3.3). Arrays are [I, Wk] unless noted."""

    gross_req: np.ndarray
    scheduled_receipts: np.ndarray
    on_hand_start: np.ndarray
    net_req: np.ndarray
    planned_order_receipt: np.ndarray
    planned_order_release: np.ndarray
    on_hand_end: np.ndarray
    orders: np.ndarray  # [I, Wk] int: planned orders landing that week after max_lot splits
    lt_weeks: np.ndarray  # [I] int
    llc: np.ndarray  # [I] int low-level code (0 = finished good / top)
    past_due: np.ndarray  # [I] bool: some release fell before week 1
    past_due_qty: np.ndarray  # [I] quantity whose release fell before week 1


@dataclass
class CapacityResult:
    """Capacity-feasible plan (SPEC 3.4). Item arrays are [I, Wk]; weekly arrays are [Wk]."""

    planned_order_receipt_adj: np.ndarray
    planned_order_release_adj: np.ndarray
    on_hand_end_adj: np.ndarray
    orders_adj: np.ndarray
    capacity: np.ndarray
    original_load: np.ndarray
    adjusted_load: np.ndarray
    prebuild_in: np.ndarray
    spill_in: np.ndarray
    spill_out: np.ndarray
    unplaced: np.ndarray  # [I] FG quantity left after the last week (exception, never dropped)
    past_due_adj: np.ndarray  # [I] bool after re-netting components
    zone: list[str | None]  # [Wk] near|at|far or None
    gross_req_adj: np.ndarray | None = None  # [I, Wk] gross requirements after re-netting components


@dataclass
class PlanContent:
    """The plan content: what both persistent encodings hold.

    ``documents`` maps artifact name to its document: a dict for ``*.json``, the CSV text for
    ``*.csv``. This is the canonical in-memory form that the codecs translate.

    ``trusted``: the engine made these documents, so they have the declared shapes and follow the
    number rule; the codecs write them without checking every value again. Content from anywhere else
    (imports, artifacts read back, hand-made documents) is checked at that boundary.
    """

    version_id: str
    params: dict[str, Any]
    documents: dict[str, Any]
    trusted: bool = False

    def document(self, name: str) -> Any:
        return self.documents[name]
