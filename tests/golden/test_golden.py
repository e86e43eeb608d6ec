"""Golden nftables rulesets: the walk-through steps and feature cases rendered to text.

Each case is a list of manifests under ``tests/golden/inputs/``; its rendering must equal
``tests/golden/<case>.nft`` byte for byte. ``KUBEFENCE_UPDATE_GOLDEN=1 pytest tests/golden``
rewrites the files (review the diff before committing). ``tests/netns/test_nft_syntax.py``
feeds every golden file to ``nft -c`` and loads it for real.

Pod addresses: a pod keeps the IPs its manifest declares (``status.podIPs``); the others get
198.18.0.1, 198.18.0.2, ... in pod order. The node's addresses are those of hostNetwork pods.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import os
import random
from pathlib import Path

import pytest

from kubefence.api import Inventory, IPAddress, Protocol
from kubefence.dataplane.nft import PROTOCOL_NUMBERS, RulesetPlan, plan_ruleset, render_ruleset
from kubefence.semantics import decide
from kubefence.sources.files import load_paths

GOLDEN_DIR = Path(__file__).resolve().parent
INPUTS = GOLDEN_DIR / "inputs"
UPDATE = os.environ.get("KUBEFENCE_UPDATE_GOLDEN") == "1"

_STEP1 = ("walkthrough/test-namespace.yaml", "walkthrough/nginx.yaml", "walkthrough/busybox.yaml")
_CLIENTS = (*_STEP1, "walkthrough/test-busybox.yaml", "walkthrough/clients.yaml")
CASES: dict[str, tuple[str, ...]] = {
    "walkthrough-1-no-policy": _STEP1,
    "walkthrough-2-deny-all": (
        *_STEP1,
        "walkthrough/test-busybox.yaml",
        "walkthrough/deny-all-policy.yaml",
    ),
    "walkthrough-3-own-namespace": (*_CLIENTS, "walkthrough/allow-policy.yaml"),
    "walkthrough-4a-and-peer": (
        *_CLIENTS,
        "walkthrough/staging.yaml",
        "walkthrough/allow-different-namespace-policy.yaml",
    ),
    "walkthrough-4b-or-peers": (
        *_CLIENTS,
        "walkthrough/staging.yaml",
        "walkthrough/allow-different-namespace-or-policy.yaml",
    ),
    "walkthrough-5-default-deny": (
        *_CLIENTS,
        "walkthrough/staging.yaml",
        "walkthrough/test-policy.yaml",
        "walkthrough/kube-dns.yaml",
        "walkthrough/default-ingress-egress-deny.yaml",
    ),
    "ipblock-except": ("features/ipblock-except.yaml",),
    "named-ports": ("features/named-ports.yaml",),
    "ports-endport-udp-sctp": ("features/ports-endport-udp-sctp.yaml",),
    "ipv6-dual-stack": ("features/ipv6-dual-stack.yaml",),
    "default-deny-egress": ("features/default-deny-egress.yaml",),
    "host-network": ("features/host-network.yaml",),
    "any-peer": ("features/any-peer.yaml",),
    "any-peer-only": ("features/any-peer-only.yaml",),
    "long-names": ("features/long-names.yaml",),
    "tiers-multi-tenant": ("features/tiers-multi-tenant.yaml",),
    "tiers-actions-and-order": ("features/tiers-actions-and-order.yaml",),
}


def load_case(name: str) -> Inventory:
    return load_paths([str(INPUTS / path) for path in CASES[name]])


def sandbox_addresses(inventory: Inventory) -> dict[str, tuple[IPAddress, ...]]:
    """Declared IPs kept, the rest numbered from 198.18.0.1 in pod order (see module doc)."""
    taken = {ip for pod in inventory.pods for ip in pod.ips}
    free = (
        ip
        for n in itertools.count(1)
        if (ip := ipaddress.IPv4Address("198.18.0.0") + n) not in taken
    )
    return {pod.key: pod.ips or (next(free),) for pod in inventory.pods}


def node_addresses(inventory: Inventory) -> tuple[IPAddress, ...]:
    return tuple(sorted({ip for p in inventory.pods if p.host_network for ip in p.ips}, key=str))


def plan_case(name: str) -> RulesetPlan:
    inventory = load_case(name)
    return plan_ruleset(
        inventory,
        addresses=sandbox_addresses(inventory),
        node_addresses=node_addresses(inventory),
    )


def render_case(name: str) -> str:
    inventory = load_case(name)
    return render_ruleset(
        inventory,
        addresses=sandbox_addresses(inventory),
        node_addresses=node_addresses(inventory),
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_ruleset_text(case: str) -> None:
    """The rendered ruleset of each case equals its reviewed golden file."""
    text = render_case(case)
    golden = GOLDEN_DIR / f"{case}.nft"
    if UPDATE:
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"missing {golden.name}: run with KUBEFENCE_UPDATE_GOLDEN=1"
    assert text == golden.read_text(encoding="utf-8"), (
        f"{golden.name} differs: review, then KUBEFENCE_UPDATE_GOLDEN=1 to accept"
    )


def test_every_golden_file_belongs_to_a_case() -> None:
    """No stale golden file lingers after a case is renamed or removed."""
    assert sorted(p.stem for p in GOLDEN_DIR.glob("*.nft")) == sorted(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_case_table_agrees_with_reference(case: str) -> None:
    """S05/S13/S21/S23: for every ordered pod pair of each case, on each declared port and on
    80/TCP and 53/UDP, the rendered table's verdict equals decide()."""
    inventory = load_case(case)
    addresses = sandbox_addresses(inventory)
    nodes = node_addresses(inventory)
    plan = plan_ruleset(inventory, addresses=addresses, node_addresses=nodes)
    probes = {(cp.protocol, cp.port) for p in inventory.pods for cp in p.ports}
    probes |= {(Protocol.TCP, 80), (Protocol.UDP, 53)}
    # The reference resolves addresses through pod.ips: give it the sandbox's addresses.
    placed = dataclasses.replace(
        inventory,
        pods=tuple(dataclasses.replace(p, ips=addresses[p.key]) for p in inventory.pods),
    )
    for src, dst in itertools.product(inventory.pods, repeat=2):
        for a, b in itertools.product(addresses[src.key], addresses[dst.key]):
            if a.version != b.version:
                continue
            for protocol, port in sorted(probes):
                expected = decide(placed, str(a), str(b), port=port, protocol=protocol).allowed
                got = plan.verdict(a, b, protocol=PROTOCOL_NUMBERS[protocol], port=port)
                assert got == expected, f"{src.key}({a}) -> {dst.key}({b}) {protocol}/{port}"


def test_rendering_is_deterministic_whatever_the_mapping_order() -> None:
    """The same inventory and addresses given in another order render identical text."""
    inventory = load_case("walkthrough-5-default-deny")
    addresses = sandbox_addresses(inventory)
    shuffled = list(addresses.items())
    random.Random(7).shuffle(shuffled)
    assert render_ruleset(inventory, addresses=dict(shuffled)) == render_ruleset(
        inventory, addresses=addresses
    )
