"""The flow-log variant of the ruleset: an option, so the default text stays byte-identical.

Golden: ``tests/golden/flow-log/<case>.nft`` is the walk-through's last step rendered with a
``FlowLog`` (``KUBEFENCE_UPDATE_GOLDEN=1`` rewrites it); tests/netns/test_flows_netns.py loads
it into a real kernel. The flow log must not change any verdict (the plan's ``verdict`` ignores
it) and must survive the smaller update transaction.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import pytest

from kubefence.dataplane.nft import (
    FlowLog,
    plan_ruleset,
    render_plan,
    render_ruleset,
    ruleset_update,
)

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
sys.path.insert(0, str(GOLDEN))
from test_golden import load_case, node_addresses, sandbox_addresses  # noqa: E402

FLOW_GOLDEN = GOLDEN / "flow-log"
CASES = ("walkthrough-5-default-deny", "walkthrough-1-no-policy")
UPDATE = os.environ.get("KUBEFENCE_UPDATE_GOLDEN") == "1"


def _render(case: str, flow_log: FlowLog | None) -> str:
    inventory = load_case(case)
    return render_ruleset(
        inventory,
        addresses=sandbox_addresses(inventory),
        node_addresses=node_addresses(inventory),
        flow_log=flow_log,
    )


@pytest.mark.parametrize("case", CASES)
def test_flow_log_golden(case: str) -> None:
    text = _render(case, FlowLog())
    golden = FLOW_GOLDEN / f"{case}.nft"
    if UPDATE:
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", CASES)
def test_without_flow_log_the_text_is_the_default_golden(case: str) -> None:
    assert _render(case, None) == (GOLDEN / f"{case}.nft").read_text(encoding="utf-8")


def test_every_drop_is_logged_or_counted_and_accepts_are_logged() -> None:
    text = _render("walkthrough-5-default-deny", FlowLog(group=9, rate=50, burst=7))
    assert "\t\trate 50/second burst 7 packets" in text
    chains = text.split("\tchain ")[1:]
    for chain in chains:
        name = chain.split()[0]
        body = [line.strip() for line in chain.split("\n\t}")[0].splitlines()[1:]]
        if name.startswith(("eg_c", "in_c")):
            assert body[-2] == (
                f'limit name "flow_log" log prefix "kf deny {name}" group 9 drop'
            ), body
            assert body[-1] == 'counter name "flow_over" drop'
            assert "drop" not in body[:-2]
    forward = next(c for c in chains if c.startswith("forward"))
    assert "ct state new jump flow_allow" in forward
    flow_allow = next(c for c in chains if c.startswith("flow_allow"))
    assert 'log prefix "kf allow" group 9 return' in flow_allow


def test_flow_log_changes_no_verdict_and_survives_updates() -> None:
    inventory = load_case("walkthrough-5-default-deny")
    smaller = load_case("walkthrough-3-own-namespace")
    kwargs = {"addresses": sandbox_addresses(inventory), "node_addresses": ()}
    plain = plan_ruleset(inventory, **kwargs)  # type: ignore[arg-type]
    logged = plan_ruleset(inventory, flow_log=FlowLog(), **kwargs)  # type: ignore[arg-type]
    assert dataclasses.replace(logged, flow_log=None) == plain
    # switching the log on or off touches the hook chains: the whole table is installed
    assert ruleset_update(plain, logged) is None
    assert ruleset_update(logged, plain) is None
    # a policy change with the log on re-renders the class chains with their log rules
    kwargs2 = {"addresses": sandbox_addresses(smaller), "node_addresses": ()}
    after = plan_ruleset(smaller, flow_log=FlowLog(), **kwargs2)  # type: ignore[arg-type]
    update = ruleset_update(logged, after)
    if update:
        for line in update.splitlines():
            if line.strip() == "drop":
                pytest.fail("a class chain of the update lost its log rule")
    assert "kf deny" in render_plan(after) or not after.egress + after.ingress


@pytest.mark.parametrize("bad", [{"group": 0}, {"rate": 0}, {"burst": -1}])
def test_flow_log_rejects_nonsense(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        FlowLog(**bad)
