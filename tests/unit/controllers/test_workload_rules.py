"""The workload controllers' arithmetic: rolling-update steps, slow start, hashes, selectors,
daemon pod placement."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubefence.controllers._objects import (
    int_or_percent,
    matches_map,
    matches_selector,
    semantic,
    template_hash,
)
from kubefence.controllers.daemonsets import daemon_pod_spec, target_node
from kubefence.controllers.deployments import rolling_targets, surge_and_unavailable
from kubefence.controllers.replicasets import slow_start

Obj = dict[str, Any]


def deployment(replicas: int, surge: Any = "25%", unavailable: Any = "25%") -> Obj:
    return {"spec": {"replicas": replicas, "strategy": {"type": "RollingUpdate", "rollingUpdate": {
        "maxSurge": surge, "maxUnavailable": unavailable}}}}  # fmt: skip


def rs(name: str, replicas: int, available: int, created: str = "2026-01-01T00:00:00Z") -> Obj:
    return {"metadata": {"name": name, "creationTimestamp": created},
            "spec": {"replicas": replicas}, "status": {"availableReplicas": available}}  # fmt: skip


def test_surge_rounds_up_and_unavailable_down() -> None:
    assert surge_and_unavailable(deployment(3)) == (1, 0)
    assert surge_and_unavailable(deployment(10)) == (3, 2)
    assert surge_and_unavailable(deployment(4, 0, 0)) == (0, 1)  # never both zero
    assert int_or_percent("50%", 5, round_up=True) == 3
    assert int_or_percent(2, 5, round_up=True) == 2


def test_rolling_update_steps_until_done() -> None:
    d = deployment(4)  # surge 1, unavailable 1
    old, new = rs("old", 4, 4, "2026-01-01T00:00:00Z"), rs("new", 0, 0, "2026-01-02T00:00:00Z")
    seen = []
    for _ in range(20):
        targets = rolling_targets(d, new, [old])
        if not targets:
            break
        new["spec"]["replicas"] = targets.get("new", new["spec"]["replicas"])
        old["spec"]["replicas"] = targets.get("old", old["spec"]["replicas"])
        # the pods catch up: everything that exists becomes available
        new["status"]["availableReplicas"] = new["spec"]["replicas"]
        old["status"]["availableReplicas"] = old["spec"]["replicas"]
        total = new["spec"]["replicas"] + old["spec"]["replicas"]
        available = new["status"]["availableReplicas"] + old["status"]["availableReplicas"]
        assert total <= 5  # replicas + maxSurge
        assert available >= 3  # replicas - maxUnavailable
        seen.append((new["spec"]["replicas"], old["spec"]["replicas"]))
    assert (new["spec"]["replicas"], old["spec"]["replicas"]) == (4, 0)
    assert len(seen) > 1


def test_rolling_update_waits_for_availability() -> None:
    d = deployment(3)  # surge 1, unavailable 0
    old, new = rs("old", 3, 3), rs("new", 1, 0, "2026-01-02T00:00:00Z")
    assert rolling_targets(d, new, [old]) == {}  # the surge pod is not available: wait
    new["status"]["availableReplicas"] = 1
    assert rolling_targets(d, new, [old]) == {"old": 2}


def test_unavailable_old_pods_go_first() -> None:
    d = deployment(4, 0, 1)
    old = rs("old", 4, 2)  # two of its pods are not available anyway
    new = rs("new", 0, 0, "2026-01-02T00:00:00Z")
    # all 4 exist, 3 must stay: one may go, and it is an unavailable one (available stays 2,
    # below the minimum, so no available pod is touched)
    assert rolling_targets(d, new, [old]) == {"old": 3}
    old["spec"]["replicas"] = 3
    assert rolling_targets(d, new, [old]) == {"new": 1}  # room under replicas + surge now


def test_slow_start_batches_and_stops_at_a_failure() -> None:
    calls: list[int] = []
    with ThreadPoolExecutor(4) as pool:
        assert slow_start(pool, 10, lambda i: calls.append(i) is None) == 10
        assert sorted(calls) == list(range(10))
        calls.clear()
        assert slow_start(pool, 10, lambda i: calls.append(i) is None and i != 1) == 2
        assert sorted(calls) == [0, 1, 2]  # batches 1 and 2; then it stopped


def test_template_hash_is_stable_and_in_the_safe_alphabet() -> None:
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}}
    digest = template_hash(template)
    assert digest == template_hash({"spec": template["spec"], "metadata": template["metadata"]})
    assert digest != template_hash(template, 1)
    assert set(digest) <= set("bcdfghjklmnpqrstvwxz2456789")
    # what a Go client adds when it re-encodes a template does not make it another template
    reencoded = {
        "metadata": {"labels": {"app": "web"}, "creationTimestamp": None},
        "spec": {"containers": [{"name": "c", "resources": {}}], "nodeName": ""},
    }
    assert template_hash(reencoded) == digest
    assert semantic(reencoded) == template


def test_selectors() -> None:
    labels = {"app": "web", "tier": "front"}
    assert matches_selector({}, labels)
    assert not matches_selector(None, labels)
    assert matches_selector({"matchLabels": {"app": "web"}}, labels)
    assert not matches_selector({"matchLabels": {"app": "db"}}, labels)
    exprs = [{"key": "tier", "operator": "In", "values": ["front", "back"]},
             {"key": "gone", "operator": "DoesNotExist"}]  # fmt: skip
    assert matches_selector({"matchExpressions": exprs}, labels)
    assert not matches_selector(
        {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, labels
    )
    assert matches_map({"app": "web"}, labels)
    assert not matches_map({}, labels)  # a Service with an empty selector selects nothing


def test_daemon_pods_are_pinned_by_affinity_and_tolerate_node_trouble() -> None:
    spec = daemon_pod_spec({"containers": [{"name": "a"}], "tolerations": [
        {"key": "x", "operator": "Exists"}]}, "node-b")  # fmt: skip
    pod = {"spec": spec}
    assert target_node(pod) == "node-b"
    keys = {t.get("key") for t in spec["tolerations"]}
    assert {"x", "node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable",
            "node.kubernetes.io/unschedulable"} <= keys  # fmt: skip
    assert target_node({"spec": {"nodeName": "node-c", **spec}}) == "node-c"
    assert target_node({"spec": {}}) == ""
