"""The scheduler's pure parts: which nodes fit a pod, which one is chosen, and the words of
FailedScheduling."""

from __future__ import annotations

from collections import Counter
from typing import Any

from kubefence.controllers.scheduler import choose_node, misfit, tolerates, unschedulable_message

Obj = dict[str, Any]


def node(name: str, *, ready: str = "True", labels: dict[str, str] | None = None,
         taints: list[Obj] | None = None, unschedulable: bool = False) -> Obj:  # fmt: skip
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"taints": taints or [], "unschedulable": unschedulable},
        "status": {"conditions": [{"type": "Ready", "status": ready}]},
    }


def pod(**spec: Any) -> Obj:
    return {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}], **spec}}


def test_fewest_pods_wins_and_ties_go_by_name() -> None:
    nodes = [node("c"), node("a"), node("b")]
    assert choose_node(pod(), nodes, {"a": 2, "b": 1, "c": 1})[0] == "b"
    assert choose_node(pod(), nodes, {})[0] == "a"


def test_not_ready_and_unknown_nodes_count_as_tainted() -> None:
    assert misfit(pod(), node("a", ready="False")) == (
        "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
    )
    assert misfit(pod(), node("a", ready="Unknown")) == (
        "node(s) had untolerated taint {node.kubernetes.io/unreachable: }"
    )
    tolerant = pod(tolerations=[{"operator": "Exists"}])
    assert misfit(tolerant, node("a", ready="Unknown")) == ""


def test_node_selector_affinity_and_node_name() -> None:
    zoned = node("a", labels={"zone": "x", "size": "4"})
    assert misfit(pod(nodeSelector={"zone": "x"}), zoned) == ""
    assert misfit(pod(nodeSelector={"zone": "y"}), zoned).startswith("node(s) didn't match Pod's")
    assert misfit(pod(nodeName="b"), zoned) == "node(s) didn't match the requested node name"

    def affinity(*terms: Obj) -> Obj:
        return pod(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": list(terms)}}})  # fmt: skip

    by_field = affinity({"matchFields": [{"key": "metadata.name", "operator": "In",
                                          "values": ["a"]}]})  # fmt: skip
    assert misfit(by_field, zoned) == ""
    assert misfit(by_field, node("b")) != ""
    gt = affinity({"matchExpressions": [{"key": "size", "operator": "Gt", "values": ["3"]}]})
    assert misfit(gt, zoned) == ""
    lt = affinity({"matchExpressions": [{"key": "size", "operator": "Lt", "values": ["3"]}]})
    assert misfit(lt, zoned) != ""
    either = affinity(
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["nope"]}]},
        {"matchExpressions": [{"key": "zone", "operator": "Exists"}]},
    )
    assert misfit(either, zoned) == ""  # terms are ORed


def test_taints_and_tolerations() -> None:
    taint = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    assert tolerates([{"key": "dedicated", "operator": "Equal", "value": "db"}], taint)
    assert tolerates([{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}], taint)
    assert not tolerates([{"key": "dedicated", "value": "web"}], taint)
    assert not tolerates([{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}],
                         taint)  # fmt: skip
    assert tolerates([{"operator": "Exists"}], taint)
    soft = node("a", taints=[{"key": "k", "effect": "PreferNoSchedule"}])
    assert misfit(pod(), soft) == ""  # a preference, not a filter
    assert misfit(pod(), node("a", taints=[taint])) == (
        "node(s) had untolerated taint {dedicated: db}"
    )


def test_cordoned_node_unless_tolerated() -> None:
    cordoned = node("a", unschedulable=True)
    assert misfit(pod(), cordoned) == "node(s) were unschedulable"
    daemon = pod(tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                               "effect": "NoSchedule"}])  # fmt: skip
    assert misfit(daemon, cordoned) == ""


def test_unschedulable_message_reads_like_upstream() -> None:
    nodes = [node("a", unschedulable=True), node("b", labels={"zone": "x"}), node("c")]
    chosen, reasons = choose_node(pod(nodeSelector={"zone": "y"}), nodes, {})
    assert chosen == ""
    assert reasons == Counter({"node(s) didn't match Pod's node affinity/selector": 2,
                               "node(s) were unschedulable": 1})  # fmt: skip
    assert unschedulable_message(3, reasons) == (
        "0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s) didn't match Pod's "
        "node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not "
        "helpful for scheduling."
    )
    assert unschedulable_message(0, Counter()) == "no nodes available to schedule pods"
