"""The audit's "reachable on any port" agrees with brute force over ``decide`` (S05, S20, S21).

The report asks the engine once per port class (``kubefence.engine.port_classes``: intervals on
which every port matcher answers the same, plus the ports no policy names); here the reference
evaluator is asked at every number a manifest names, every declared port and random others, for
every pod pair and protocol, on generated clusters and on the scenario corpus. The namespace
matrix, and per cross-tenant namespace pair the pod pairs and workload pairs counted and the
ports (against ``decide`` per port class), of the pairs and of every example, must agree.
"""

from __future__ import annotations

import random

import pytest
from benchmarks.generate import generate_cluster
from tests.scenarios.corpus import load_scenarios

from kubefence.api import Inventory, Protocol
from kubefence.audit import build_report
from kubefence.audit._paths import PROTOCOLS, port_labels
from kubefence.engine import port_classes
from kubefence.semantics import decide
from kubefence.sources.objects import inventory_from_objects


def brute_force(inventory: Inventory, seed: int) -> set[tuple[str, str]]:
    """Pod pairs that some (protocol, port) connects, asked of decide at many ports."""
    rng = random.Random(seed)
    ports = {1, 65535, *(rng.randint(1, 65535) for _ in range(6))}
    for policy in inventory.policies:  # every number a manifest names, independently derived
        for rule in (*policy.ingress, *policy.egress):
            for entry in rule.ports:
                if isinstance(entry.port, int):
                    ports |= {entry.port, entry.end_port or entry.port}
    ports |= {cp.port for pod in inventory.pods for cp in pod.ports}
    found = set()
    for src in inventory.pods:
        for dst in inventory.pods:
            if any(
                decide(inventory, src.key, dst.key, port=port, protocol=protocol).allowed
                for protocol in Protocol
                for port in sorted(ports)
            ):
                found.add((src.key, dst.key))
    return found


def workload(inventory: Inventory, key: str) -> str:
    pod = next(p for p in inventory.pods if p.key == key)
    return f"{pod.namespace}/{pod.owner}" if pod.owner else pod.key


def oracle_ports(inventory: Inventory, pairs: set[tuple[str, str]]) -> tuple[str, ...]:
    """Labels of the port classes on which ``decide`` allows some pair of ``pairs``."""
    classes = port_classes([inventory], protocols=PROTOCOLS)
    allowed = [
        c
        for c in classes
        if any(decide(inventory, a, b, port=c.port, protocol=c.protocol).allowed for a, b in pairs)
    ]
    return port_labels(allowed, classes)


def check(inventory: Inventory, seed: int) -> None:
    report = build_report(inventory, tenant_label="team", explain=None)
    pairs = brute_force(inventory, seed)
    namespace_of = {p.key: p.namespace for p in inventory.pods}
    expected = {(namespace_of[a], namespace_of[b]) for a, b in pairs}
    names = report.names
    got = {(a, b) for i, a in enumerate(names) for j, b in enumerate(names) if report.matrix[i][j]}
    assert got == expected
    team = {n.name: n.tenant for n in report.namespaces}
    cross = {
        (a, b)
        for a, b in pairs
        if team[namespace_of[a]] is not None
        and team[namespace_of[b]] is not None
        and team[namespace_of[a]] != team[namespace_of[b]]
    }
    # Every cross-tenant pod pair is counted once, in its namespace pair and workload pair.
    by_ns: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for a, b in cross:
        by_ns.setdefault((namespace_of[a], namespace_of[b]), set()).add((a, b))
    paths = {(p.source, p.destination): p for p in report.tenant_paths}
    assert set(paths) == set(by_ns)
    assert [(p.source, p.destination) for p in report.tenant_paths] == sorted(paths)
    for key, members in by_ns.items():
        path = paths[key]
        assert (path.source_tenant, path.destination_tenant) == (team[key[0]], team[key[1]])
        assert path.pod_pairs == len(members)
        by_workload: dict[tuple[str, str], set[tuple[str, str]]] = {}
        for a, b in members:
            by_workload.setdefault((workload(inventory, a), workload(inventory, b)), set()).add(
                (a, b)
            )
        assert path.workload_pairs == len(by_workload)
        assert path.ports == oracle_ports(inventory, members)
        shown = sorted(by_workload)[: len(path.workloads)]
        assert [(w.source, w.destination) for w in path.workloads] == shown
        assert len(path.workloads) == min(3, len(by_workload))
        for w in path.workloads:
            assert w.pod_pairs == len(by_workload[(w.source, w.destination)])
            assert w.ports == oracle_ports(inventory, by_workload[(w.source, w.destination)])
            ex = w.example
            assert (ex.source, ex.destination) in by_workload[(w.source, w.destination)]
            assert ex.ports == oracle_ports(inventory, {(ex.source, ex.destination)})
            assert ex.explained  # explain=None: every example
    examples = [w.example for p in report.tenant_paths for w in p.workloads]
    assert list(report.cross_tenant) == sorted(examples, key=lambda p: (p.source, p.destination))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_s05_namespace_reachability_matches_brute_force_on_generated_clusters(seed: int) -> None:
    """Engine-per-port-class == decide at named, declared and random ports, every pair."""
    objects = generate_cluster(pods=14, namespaces=4, policies=10, seed=seed)
    check(inventory_from_objects(objects), seed)


@pytest.mark.parametrize("scenario", load_scenarios(), ids=lambda s: s.name)
def test_s05_namespace_reachability_matches_brute_force_on_scenarios(scenario: object) -> None:
    """The same agreement on every real-world scenario of the corpus."""
    inventory = scenario.inventory()  # type: ignore[attr-defined]
    if len(inventory.pods) > 20:
        pytest.skip("brute force is quadratic; large scenarios are covered by the engine's tests")
    check(inventory, 7)


def test_s20_reachability_only_through_a_later_port_range_is_found() -> None:
    """c reaches b only on TCP 6000-6010 and a only on TCP 5000: both paths are found."""

    def policy(name: str, source: str, port: int, end: int | None = None) -> dict[str, object]:
        entry: dict[str, object] = {"port": port} if end is None else {"port": port, "endPort": end}
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "b"},
            "spec": {
                "podSelector": {},
                "ingress": [
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": source}
                                }
                            }
                        ],
                        "ports": [entry],
                    }
                ],
            },
        }

    objects: list[dict[str, object]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": {"team": n}}}
        for n in ("a", "b", "c")
    ]
    objects += [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": n},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        }
        for n in ("a", "b", "c")
    ]
    objects += [policy("from-a", "a", 5000), policy("from-c", "c", 6000, 6010)]
    inventory = inventory_from_objects(objects)
    check(inventory, 3)
    report = build_report(inventory, tenant_label="team")
    ports = {(p.source, p.destination): p.ports for p in report.cross_tenant}
    assert ports[("c/p", "b/p")] == ("6000-6010/TCP",)
    assert ports[("a/p", "b/p")] == ("5000/TCP",)


def test_s24_traffic_from_a_node_counts_per_pod_on_that_node() -> None:
    """A hostNetwork pod of tenant a on node-1 reaches b's pod on node-1 despite b's default
    deny (S24), but not the identical pod on node-2: counts and ports agree with decide."""

    def pod(namespace: str, name: str, node: str, host: bool = False) -> dict[str, object]:
        spec: dict[str, object] = {"nodeName": node, "containers": [{"name": "c", "image": "i"}]}
        if host:
            spec["hostNetwork"] = True
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": "x"}},
            "spec": spec,
        }

    objects: list[dict[str, object]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": {"team": n}}}
        for n in ("a", "b")
    ]
    objects += [
        pod("a", "agent", "node-1", host=True),
        pod("b", "p1", "node-1"),
        pod("b", "p2", "node-2"),
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "deny", "namespace": "b"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        },
    ]
    inventory = inventory_from_objects(objects)
    check(inventory, 5)
    report = build_report(inventory, tenant_label="team")
    ab = next(p for p in report.tenant_paths if (p.source, p.destination) == ("a", "b"))
    assert ab.pod_pairs == 1
    assert [(w.example.source, w.example.destination) for w in ab.workloads] == [
        ("a/agent", "b/p1")
    ]
