"""The scenario corpus through the nftables plan: the table gives each expected verdict.

Why this module exists: the corpus is the shared truth (``tests/scenarios``). Here every check is
answered by ``RulesetPlan.verdict``, i.e. by what the rendered table would do with the packet,
without root. Pods keep the IPs their manifests declare; the others get free addresses, as the
sandbox does. Where an endpoint had no declared IP the expectation may rely on "no IP matches no
ipBlock" (S15), so such checks are held to the reference evaluator on the placed addresses
instead. ``svc:``/``node:`` endpoints and names the destination does not declare are left to
the reference tests: no packet carries them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools

import pytest
from tests.scenarios.corpus import Check, Scenario, load_scenarios

from kubefence.api import Inventory, IPAddress, Protocol
from kubefence.dataplane.nft import PROTOCOL_NUMBERS, plan_ruleset
from kubefence.semantics import decide, resolve_named_port

SCENARIOS = load_scenarios()


def _placed(inventory: Inventory) -> Inventory:
    """Every pod with addresses: declared ones kept, 198.18.0.1, ... for the others."""
    taken = {ip for pod in inventory.pods for ip in pod.ips}
    free = (
        ip
        for n in itertools.count(1)
        if (ip := ipaddress.IPv4Address("198.18.0.0") + n) not in taken
    )
    pods = tuple(
        pod if pod.ips else dataclasses.replace(pod, ips=(next(free),)) for pod in inventory.pods
    )
    return dataclasses.replace(inventory, pods=pods)


def _addresses(inventory: Inventory, endpoint: str) -> tuple[IPAddress, ...] | None:
    if endpoint.startswith(("svc:", "node:")):
        return None
    pod = inventory.pod_by_key.get(endpoint)
    return pod.ips if pod is not None else (ipaddress.ip_address(endpoint),)


def _port(inventory: Inventory, check: Check, protocol: Protocol) -> int | None:
    if isinstance(check.port, int) or check.port.isdigit():
        return int(check.port)
    pod = inventory.pod_by_key.get(check.dst)
    if pod is None or pod.host_network:
        return None
    return resolve_named_port(check.port, protocol, pod.ports)


def _node_addresses(inventory: Inventory, destination: str) -> tuple[IPAddress, ...]:
    """The addresses of the destination's own node (S24), known from hostNetwork pods."""
    pod = inventory.pod_by_key.get(destination)
    if pod is None or pod.node is None:
        return ()
    return tuple(
        ip for p in inventory.pods if p.host_network and p.node == pod.node for ip in p.ips
    )


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_checks_through_the_table(scenario: Scenario) -> None:
    """S01-S24 as data: each packet-level check of the corpus gets its verdict from the table."""
    original = scenario.inventory()
    inventory = _placed(original)
    addresses = {pod.key: pod.ips for pod in inventory.pods}
    checked = 0
    for check in scenario.checks:
        protocol = Protocol(check.protocol.upper())
        port = _port(inventory, check, protocol)
        sources, destinations = _addresses(inventory, check.src), _addresses(inventory, check.dst)
        if port is None or sources is None or destinations is None:
            continue
        plan = plan_ruleset(
            inventory, addresses=addresses, node_addresses=_node_addresses(inventory, check.dst)
        )
        declared = all(
            original.pod_by_key[e].ips for e in (check.src, check.dst) if e in original.pod_by_key
        )
        for a, b in itertools.product(sources, destinations):
            if a.version != b.version:
                continue
            got = plan.verdict(a, b, protocol=PROTOCOL_NUMBERS[protocol], port=port)
            if declared:
                assert got == check.expect_allowed, f"{check.id} ({a} -> {b})"
            else:
                want = decide(inventory, str(a), str(b), port=port, protocol=protocol).allowed
                assert got == want, f"{check.id} ({a} -> {b}) on placed addresses"
            checked += 1
    if not checked:
        pytest.skip("no check of this scenario is a packet between addresses")
