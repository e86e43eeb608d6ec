"""``kubefence flows``' explanations and lines, from synthetic flow events (no root needed).

The kernel side is tested in tests/netns/test_flows_netns.py; here the mapping from a logged
5-tuple to pods, the one-line explanation (the same ``decide`` as ``kubefence explain``), the
mismatch flag, the filters and the text line.
"""

from __future__ import annotations

import argparse
import ipaddress

from tests.netns.conftest import ALLOW_POLICY, QUICKSTART_PODS, inventory_of

from kubefence.cli._flows import FlowExplainer, _wanted, explanation, render_line
from kubefence.dataplane.netns import FlowEvent
from kubefence.semantics import DEFAULT_SETTINGS, decide

ADDRESSES = {
    "198.18.0.2": "default/busybox",
    "198.18.0.3": "test/client",
    "198.18.0.4": "test/nginx",
}


def _explainer(text: str = QUICKSTART_PODS + ALLOW_POLICY) -> FlowExplainer:
    return FlowExplainer(inventory_of(text), settings=DEFAULT_SETTINGS, names=ADDRESSES)


def _event(
    src: str, dst: str, *, allowed: bool, protocol: int = 6, port: int | None = 80
) -> FlowEvent:
    return FlowEvent(
        time=1_796_650_000.25,
        allowed=allowed,
        chain=None if allowed else "in_c1",
        source=ipaddress.ip_address(src),
        destination=ipaddress.ip_address(dst),
        protocol=protocol,
        source_port=40000 if port is not None else None,
        destination_port=port,
    )


def test_denied_record_names_the_isolating_policy() -> None:
    record = _explainer().record(_event("198.18.0.2", "198.18.0.4", allowed=False))
    assert record["source"] == "default/busybox"
    assert record["destination"] == "test/nginx"
    assert record["verdict"] == record["predicted"] == "denied"
    assert record["explanation"] == (
        "ingress at test/nginx: isolated by test/allow-policy, no rule allows it"
    )
    assert record["time"] == "2026-12-07T13:26:40.250+00:00"
    line = render_line(record)
    assert line.startswith("13:26:40.250  denied   default/busybox:40000 -> test/nginx 80/TCP  ")
    assert "MISMATCH" not in line


def test_allowed_record_names_the_rule_and_a_mismatch_is_flagged() -> None:
    explainer = _explainer()
    record = explainer.record(_event("198.18.0.3", "198.18.0.4", allowed=True))
    assert record["explanation"] == "ingress at test/nginx: allowed by test/allow-policy rule 0"
    # the kernel let through what the prediction denies: said on the line
    odd = explainer.record(_event("198.18.0.2", "198.18.0.4", allowed=True))
    assert "[MISMATCH: kubefence predicts denied]" in render_line(odd)


def test_unisolated_unknown_and_portless_connections() -> None:
    explainer = _explainer(QUICKSTART_PODS)
    record = explainer.record(_event("198.18.0.2", "198.18.0.4", allowed=True))
    assert record["explanation"] == "no policy isolates either side"
    gone = explainer.record(_event("198.18.0.9", "198.18.0.4", allowed=True))
    assert gone["source"] == "198.18.0.9"
    assert gone["predicted"] == "allowed"  # an address outside the pods: S05
    icmp = explainer.record(_event("198.18.0.2", "198.18.0.4", allowed=True, protocol=1, port=None))
    assert icmp["protocol"] == "ICMP"
    assert icmp["predicted"] is None
    assert "TCP, UDP and SCTP" in str(icmp["explanation"])
    assert "-> test/nginx ICMP" in render_line(icmp)


def test_explanation_matches_decide() -> None:
    inventory = inventory_of(QUICKSTART_PODS + ALLOW_POLICY)
    decision = decide(inventory, "test/client", "test/nginx", port=80)
    assert explanation(decision) == "ingress at test/nginx: allowed by test/allow-policy rule 0"


def test_filters() -> None:
    record = _explainer().record(_event("198.18.0.2", "198.18.0.4", allowed=False))
    args = argparse.Namespace(verdict=None, namespace=None)
    assert _wanted(record, args)
    assert not _wanted(record, argparse.Namespace(verdict="allowed", namespace=None))
    assert _wanted(record, argparse.Namespace(verdict="denied", namespace="default"))
    assert _wanted(record, argparse.Namespace(verdict=None, namespace="test"))
    assert not _wanted(record, argparse.Namespace(verdict=None, namespace="other"))
