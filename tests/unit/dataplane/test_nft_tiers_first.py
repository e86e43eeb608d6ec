"""A tier class's steps folded into one verdict map (``_tiers_first``): the map answers what the
first matching step does, at every point, and a packet does one lookup per tier chain."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.dataplane.test_nft_tiers import SCENARIOS, _placed, tiered_clusters

from kubefence.api import Inventory
from kubefence.dataplane.nft import plan_ruleset, render_plan
from kubefence.dataplane.nft._intervals import Box, disjoint_boxes
from kubefence.dataplane.nft._tiers_first import first_match_elements, label_of

_ATOMS = 6
_PROTOCOLS = (0, 6, 17, 132, 255)
_PORTS = (0, 52, 53, 54, 80, 81, 443, 65535)


def _interval(draw: st.DrawFn, points: tuple[int, ...]) -> tuple[int, int]:
    low, high = sorted(draw(st.lists(st.sampled_from(points), min_size=2, max_size=2)))
    return (low, high)


@st.composite
def _steps(draw: st.DrawFn) -> list[tuple[str | None, tuple[Box, ...]]]:
    steps = []
    for _ in range(draw(st.integers(0, 6))):
        boxes = [
            (
                _interval(draw, tuple(range(_ATOMS + 1))),
                _interval(draw, _PROTOCOLS),
                _interval(draw, _PORTS),
            )
            for _ in range(draw(st.integers(1, 3)))
        ]
        label = draw(st.sampled_from((None, "Accept", "Deny", "ad_eg_s9")))
        steps.append((label, disjoint_boxes(boxes)))
    return steps


def _inside(box: Box, point: tuple[int, int, int]) -> bool:
    return all(low <= value <= high for (low, high), value in zip(box, point, strict=True))


@settings(max_examples=300, deadline=None)
@given(_steps())
def test_the_map_answers_the_first_matching_step_everywhere(
    steps: list[tuple[str | None, tuple[Box, ...]]],
) -> None:
    elements = first_match_elements(steps)
    boxes = [box for box, _ in elements]
    for a, b in itertools.combinations(boxes, 2):  # disjoint: nft refuses overlaps
        assert not all(x[0] <= y[1] and y[0] <= x[1] for x, y in zip(a, b, strict=True))
    points = itertools.product(
        range(_ATOMS + 2),
        {*_PROTOCOLS, 1, 7, 254},
        {*_PORTS, 1, 79, 82, 444, 65534},
    )
    for point in points:
        want = next((label for label, bs in steps if any(_inside(b, point) for b in bs)), None)
        got = [label for box, label in elements if _inside(box, point)]
        assert got == ([] if want is None else [want]), point


def test_labels_keep_only_what_differs_from_no_match() -> None:
    assert label_of("Admin", "Accept", "ad_eg_s1", logged=False) == "Accept"
    assert label_of("Admin", "Deny", "ad_eg_s2", logged=False) == "Deny"
    assert label_of("Admin", "Deny", "ad_eg_s2", logged=True) == "ad_eg_s2"
    assert label_of("Admin", "Pass", "ad_eg_s3", logged=False) is None
    assert label_of("Baseline", "Accept", "bl_eg_s1", logged=False) is None
    assert label_of("Baseline", "Pass", "bl_eg_s2", logged=False) is None
    assert label_of("Baseline", "Deny", "bl_eg_s3", logged=False) == "Deny"


def _one_lookup_per_class(text: str) -> None:
    """Every tier class chain holds at most one verdict map lookup and no other lookup."""
    chains = text.split("\tchain ")
    for chain in chains[1:]:
        name = chain.split(" ", 1)[0]
        if name[:3] in ("ad_", "bl_") and "_c" in name:
            body = chain.split("\n\t}", 1)[0]
            assert body.count("meta mark . meta l4proto . th dport") <= 1, name
            assert " @" not in body.replace("vmap @", ""), name


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiered_clusters())
def test_class_maps_agree_with_the_steps_and_packets_walk_one_lookup(inventory: Inventory) -> None:
    placed = _placed(inventory)
    plan = plan_ruleset(placed, addresses={pod.key: pod.ips for pod in placed.pods})
    assert plan.tiers is not None
    atoms = max((r.atom for r in plan.atoms), default=0)
    for group in plan.tiers.groups:
        for cls in group.classes:
            for atom, protocol, port in itertools.product(
                range(atoms + 2), (6, 17, 132, 1), (1, 53, 80, 443, 8080)
            ):
                steps = cls.steps_first_match(atom, protocol=protocol, port=port)
                got = cls.first_match(atom, protocol=protocol, port=port)
                if group.tier == "Admin":
                    want = steps if steps in ("Accept", "Deny") else None
                else:
                    want = "Deny" if steps == "Deny" else None
                assert got == want, (cls.chain, atom, protocol, port)
    _one_lookup_per_class(render_plan(plan))


def test_scenario_tables_walk_one_lookup_per_tier_chain() -> None:
    for scenario in SCENARIOS:
        placed = _placed(scenario.inventory())
        plan = plan_ruleset(placed, addresses={pod.key: pod.ips for pod in placed.pods})
        _one_lookup_per_class(render_plan(plan))
