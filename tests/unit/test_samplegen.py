"""The deterministic sample generator (SPEC 8, ``scpln sample generate``)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.planning.inputs import REQUIRED_FILES, load_input_set
from app.planning.samplegen import generate_sample


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def bom_depth(inputs) -> int:
    """Longest parent -> child chain below a finished good (levels of the BOM)."""
    depth = np.zeros(len(inputs.items), dtype=np.int64)
    for _ in range(len(inputs.items)):
        new = depth.copy()
        np.maximum.at(new, inputs.bom_child, depth[inputs.bom_parent] + 1)
        if np.array_equal(new, depth):
            return int(depth.max())
        depth = new
    raise AssertionError("cyclic BOM")


def test_default_sample_is_a_valid_input_set(tmp_path):
    out = generate_sample(tmp_path / "gen")
    assert set(REQUIRED_FILES) <= {p.name for p in out.iterdir()}
    inputs = load_input_set(out)
    assert inputs.warnings == []
    assert len(inputs.families) == 3 and len(inputs.skus) == 15
    assert len(inputs.items) == 15 + 20
    assert inputs.calendar.periods[0] == "2026-01" and inputs.calendar.n_periods == 12
    assert inputs.calendar.derived


def test_same_seed_gives_identical_bytes(tmp_path):
    a = generate_sample(tmp_path / "a", seed=7)
    b = generate_sample(tmp_path / "b", seed=7)
    assert file_bytes(a) == file_bytes(b)


def test_different_seed_gives_different_files(tmp_path):
    a = generate_sample(tmp_path / "a", seed=1)
    b = generate_sample(tmp_path / "b", seed=2)
    assert file_bytes(a) != file_bytes(b)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_bom_has_the_requested_depth(tmp_path, depth):
    inputs = load_input_set(generate_sample(tmp_path, components=30, bom_depth=depth))
    assert bom_depth(inputs) == depth


def test_every_sku_uses_components_and_every_component_is_used(tmp_path):
    inputs = load_input_set(generate_sample(tmp_path, skus_per_family=20, components=40, bom_depth=3))
    s = inputs.n_fg
    assert set(inputs.bom_parent[inputs.bom_parent < s].tolist()) == set(range(s))
    assert set(inputs.bom_child.tolist()) == set(range(s, len(inputs.items)))


def test_some_components_are_shared_across_parents_and_levels(tmp_path):
    inputs = load_input_set(
        generate_sample(tmp_path, families=4, skus_per_family=25, components=60, bom_depth=3)
    )
    parents = np.bincount(inputs.bom_child, minlength=len(inputs.items))
    assert (parents >= 2).any()
    # a component below level 1 that a finished good also uses directly
    deep = {i for i, name in enumerate(inputs.items) if name.startswith(("CMP-2-", "CMP-3-"))}
    direct = set(inputs.bom_child[inputs.bom_parent < inputs.n_fg].tolist())
    assert deep & direct


def test_capacity_is_around_average_demand_so_some_months_are_tight(tmp_path):
    inputs = load_input_set(generate_sample(tmp_path, families=5, seed=3))
    demand = inputs.demand.sum(axis=0)
    capacity = inputs.capacity.sum(axis=0)
    ratio = capacity / demand.mean()
    assert ((ratio > 0.949) & (ratio < 1.101)).all()
    assert (demand > capacity).any() and (demand < capacity).any()


def test_open_pos_use_all_three_due_formats(tmp_path):
    out = generate_sample(tmp_path, components=200)
    dues = [line.split(",")[1] for line in (out / "open_po.csv").read_text().splitlines()[1:]]
    kinds = {len(d) for d in dues}  # 2026-01-15 (10), 2026-W03 (8), 2026-01 (7)
    assert kinds == {10, 8, 7}


def test_lot_rules_hold_in_the_item_master(tmp_path):
    inputs = load_input_set(generate_sample(tmp_path, components=300))
    capped = inputs.item_max_lot > 0
    assert capped.any()
    assert (inputs.item_moq[capped] <= inputs.item_max_lot[capped]).all()
    assert (inputs.item_lot >= 1).all()


def test_month_count_and_start_are_honoured(tmp_path):
    inputs = load_input_set(generate_sample(tmp_path, months=3, start="2027-11"))
    assert inputs.calendar.periods == ["2027-11", "2027-12", "2028-01"]


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError):
        generate_sample(tmp_path, components=2, bom_depth=3)
    with pytest.raises(ValueError):
        generate_sample(tmp_path, families=0)


def test_ten_thousand_sku_set_generates_and_loads(tmp_path):
    out = generate_sample(tmp_path, families=20, skus_per_family=500, components=3000, bom_depth=3)
    inputs = load_input_set(out)
    assert inputs.n_fg == 10_000 and len(inputs.items) == 13_000
    assert bom_depth(inputs) == 3


@settings(max_examples=40, deadline=None)
@given(
    families=st.integers(1, 4),
    skus=st.integers(1, 6),
    depth=st.integers(1, 4),
    extra=st.integers(0, 20),
    months=st.integers(1, 14),
    seed=st.integers(0, 10_000),
)
def test_any_arguments_give_a_valid_acyclic_input_set(families, skus, depth, extra, months, seed):
    with tempfile.TemporaryDirectory() as tmp:
        out = generate_sample(tmp, families, skus, depth + extra, depth, months, seed)
        inputs = load_input_set(out)
    assert inputs.n_fg == families * skus
    assert bom_depth(inputs) == depth
    assert inputs.calendar.n_periods == months
