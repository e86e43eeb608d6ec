"""The agent's store: objects parsed one at a time, an inventory assembled, bad input isolates."""

from __future__ import annotations

import dataclasses
import json

from tests.builders import namespace, pod, policy

from kubefence.agent._enforce import hold_text
from kubefence.agent._ops import JsonFormatter
from kubefence.agent._store import Store
from kubefence.api import NetworkPolicy, PolicyType, Protocol
from kubefence.dataplane.nft import render_ruleset


def server_copy(obj: dict[str, object], version: str = "1") -> dict[str, object]:
    """What a list or watch returns: no apiVersion/kind per item, server metadata filled in."""
    copy = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    metadata = dict(copy["metadata"])  # type: ignore[call-overload]
    metadata.update(resourceVersion=version, uid="u-" + str(metadata["name"]))
    metadata.update(managedFields=[{"manager": "k"}], creationTimestamp="2026-01-01T00:00:00Z")
    copy["metadata"] = metadata
    return copy


def test_snapshot_has_local_pods_their_addresses_and_every_policy() -> None:
    store = Store("n1")
    store.put("Namespace", "a", server_copy(namespace("a", team="x")))
    store.put("Pod", "a/web", server_copy(pod("a/web", ip="198.18.1.2", node="n1", app="web")))
    store.put("Pod", "a/db", server_copy(pod("a/db", ip="198.18.2.2", node="n2", app="db")))
    store.put("Pod", "a/new", server_copy(pod("a/new", node="n1")))  # no address yet
    spec = {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}
    store.put("NetworkPolicy", "a/p", server_copy(policy("a/p", spec)))
    snap = store.snapshot()
    assert [p.key for p in snap.inventory.pods] == ["a/db", "a/web"]  # a/db: a peer
    assert snap.local == frozenset({"a/web"})
    assert [str(a) for a in snap.addresses["a/db"]] == ["198.18.2.2"]
    assert [p.name for p in snap.inventory.policies] == ["p"]
    assert snap.inventory.namespace_labels("a")["team"] == "x"
    assert snap.problems == ()


def test_versions_count_only_real_changes_and_deletes() -> None:
    store = Store("n1")
    obj = server_copy(pod("a/web", ip="198.18.1.2", node="n1", app="web"))
    store.put("Pod", "a/web", obj)
    first = store.version
    store.put("Pod", "a/web", server_copy(pod("a/web", ip="198.18.1.2", node="n1", app="web"), "2"))
    assert store.version == first  # a status-only write that changes nothing we read
    store.remove("Pod", "a/web")
    assert store.version == first + 1
    assert store.snapshot().inventory.pods == ()


LOCAL_WEB = server_copy(pod("a/web", ip="198.18.1.2", node="n1", app="web"))


def test_only_policies_of_namespaces_with_a_local_pod_are_planned_and_the_table_is_the_same() -> (
    None
):
    store = Store("n1")
    store.put("Pod", "a/web", LOCAL_WEB)
    store.put("Pod", "b/db", server_copy(pod("b/db", ip="198.18.2.2", node="n2", app="db")))
    store.put("NetworkPolicy", "a/p", server_copy(policy("a/p", {"podSelector": {}})))
    spec = {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]}
    store.put("NetworkPolicy", "b/q", server_copy(policy("b/q", spec)))
    snap = store.snapshot()
    assert [p.key for p in snap.inventory.policies] == ["a/p"]
    assert snap.policies_total == 2
    whole = dataclasses.replace(
        snap.inventory, policies=(*snap.inventory.policies, *_all_policies(store))
    )
    assert render_ruleset(snap.inventory, addresses=snap.addresses, local=snap.local) == (
        render_ruleset(whole, addresses=snap.addresses, local=snap.local)
    )


def _all_policies(store: Store) -> tuple[NetworkPolicy, ...]:
    return tuple(p for p in store._tuple("NetworkPolicy") if p.namespace != "a")


def test_a_policy_that_does_not_validate_isolates_what_it_selects() -> None:
    store = Store("n1")
    store.put("Pod", "a/web", LOCAL_WEB)
    bad = server_copy(
        policy("a/bad", {"podSelector": {"matchLabels": {"app": "web"}},
                         "ingress": [{"ports": [{"port": 0}]}]})
    )  # fmt: skip
    problem = store.put("NetworkPolicy", "a/bad", bad)
    assert problem is not None
    assert "port" in problem.message
    stand_in = store.snapshot().inventory.policies[0]
    assert stand_in.pod_selector.match_labels == {"app": "web"}
    assert stand_in.ingress == ()
    assert set(stand_in.policy_types) == {PolicyType.INGRESS, PolicyType.EGRESS}
    assert store.snapshot().problems[0].key == "a/bad"


def test_a_protocol_this_node_cannot_serve_isolates_and_a_fix_clears_the_problem() -> None:
    store = Store("n1", unsupported=(Protocol.SCTP,))
    store.put("Pod", "a/web", LOCAL_WEB)
    spec = {"podSelector": {}, "policyTypes": ["Ingress"],
            "ingress": [{"ports": [{"port": 9, "protocol": "SCTP"}]}]}  # fmt: skip
    problem = store.put("NetworkPolicy", "a/s", server_copy(policy("a/s", spec)))
    assert problem is not None
    assert "SCTP" in problem.message
    assert store.snapshot().inventory.policies[0].ingress == ()
    assert store.snapshot().inventory.policies[0].policy_types == (PolicyType.INGRESS,)
    spec["ingress"][0]["ports"][0]["protocol"] = "TCP"  # type: ignore[index]
    assert store.put("NetworkPolicy", "a/s", server_copy(policy("a/s", spec), "2")) is None
    assert store.snapshot().problems == ()
    assert len(store.snapshot().inventory.policies[0].ingress) == 1


def test_hold_table_replaces_the_table_and_drops_new_connections() -> None:
    text = hold_text()
    assert text.startswith("table inet kubefence {}\ndelete table inet kubefence\n")
    assert "ct state established,related accept" in text
    assert "drop" in text


def test_json_logs_carry_extra_fields() -> None:
    import logging

    record = logging.makeLogRecord({"msg": "ruleset %s", "args": ("update",), "levelname": "INFO",
                                    "name": "kubefence.agent", "seconds": 0.004})  # fmt: skip
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "ruleset update"
    assert line["seconds"] == 0.004
    assert line["level"] == "info"


def test_policies_of_other_namespaces_wait_unparsed_until_a_pod_of_this_node_arrives() -> None:
    store = Store("n1", unsupported=(Protocol.SCTP,))
    spec = {"podSelector": {}, "ingress": [{"ports": [{"port": 9, "protocol": "SCTP"}]}]}
    assert store.put("NetworkPolicy", "b/s", server_copy(policy("b/s", spec))) is None
    assert (
        store.put("NetworkPolicy", "b/p", server_copy(policy("b/p", {"podSelector": {}}))) is None
    )
    assert store.count("NetworkPolicy") == 2
    assert store.snapshot().problems == ()  # not this node's to enforce (yet)
    store.put("Pod", "b/x", server_copy(pod("b/x", ip="198.18.2.9", node="n2")))
    assert store.snapshot().inventory.policies == ()
    store.put("Pod", "b/y", server_copy(pod("b/y", ip="198.18.1.9", node="n1")))
    snap = store.snapshot()
    assert [p.key for p in snap.inventory.policies] == ["b/p", "b/s"]
    assert [p.key for p in snap.problems] == ["b/s"]
    assert snap.policies_total == 2
    store.remove("Pod", "b/y")
    assert store.snapshot().inventory.policies == ()


def test_a_pod_that_does_not_validate_keeps_its_labels_and_address() -> None:
    store = Store("n1")
    bad = server_copy(
        pod("a/web", ip="198.18.1.2", node="n1", app="web", ports=[{"containerPort": 0}])
    )
    problem = store.put("Pod", "a/web", bad)
    assert problem is not None
    assert "containerPort" in problem.message
    kept = store.snapshot().inventory.pods
    assert [(p.key, dict(p.labels), [str(a) for a in p.ips], p.ports) for p in kept] == [
        ("a/web", {"app": "web"}, ["198.18.1.2"], ())
    ]
    assert store.snapshot().local == frozenset({"a/web"})
    bad["metadata"]["labels"] = {"app": "-bad-"}  # type: ignore[index]
    assert store.put("Pod", "a/web", bad) is not None
    assert store.snapshot().inventory.pods == ()


def _pods_batch() -> list[tuple[str, dict[str, object]]]:
    made = [
        pod(f"{ns}/p{i}", ip=f"198.18.{i % 3}.{i + 2}", node=f"n{i % 3}", app=f"a{i % 4}")
        for i in range(30)
        for ns in ("b",)
    ]
    return [(f"b/p{i}", server_copy(obj)) for i, obj in enumerate(made)]


def _store_state(store: Store) -> tuple[object, ...]:
    snap = store.snapshot()
    return (snap.inventory, snap.local, snap.addresses, snap.problems, store.count("Pod"))


def test_the_first_list_parsed_as_one_batch_is_what_one_parse_each_gives() -> None:
    """``put_pods`` keeps the models one ``put`` each keeps (so a resync finds no change), and
    wakes the waiting policies of a namespace that gets its first local pod."""
    spec = {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}
    stores = [Store("n1"), Store("n1")]
    for store in stores:
        store.put("NetworkPolicy", "b/p", server_copy(policy("b/p", spec)))
    stores[0].put_pods(_pods_batch())
    for key, obj in _pods_batch():
        stores[1].put("Pod", key, obj)
    assert _store_state(stores[0]) == _store_state(stores[1])
    assert [p.key for p in stores[0].snapshot().inventory.policies] == ["b/p"]
    version = stores[0].version
    for key, obj in _pods_batch():  # a resync of the same objects changes nothing
        stores[0].put("Pod", key, obj)
    assert stores[0].version == version


def test_a_bad_pod_in_the_first_list_is_kept_as_one_parse_keeps_it() -> None:
    batch = _pods_batch()
    bad = server_copy(
        pod("b/bad", ip="198.18.1.99", node="n1", app="x", ports=[{"containerPort": 0}])
    )
    batch.append(("b/bad", bad))
    stores = [Store("n1"), Store("n1")]
    stores[0].put_pods(batch)
    for key, obj in batch:
        stores[1].put("Pod", key, obj)
    assert _store_state(stores[0]) == _store_state(stores[1])
    assert [p.key for p in stores[0].snapshot().problems] == ["b/bad"]


def test_changed_models_keep_their_place_and_equal_a_store_built_afresh() -> None:
    batch = _pods_batch()
    store = Store("n1")
    store.put_pods(batch)
    store.snapshot()  # sorted once
    final = dict(batch)
    for index in (3, 17, 3, 29, 0):
        key = f"b/p{index}"
        changed = server_copy(
            pod(key, ip=f"198.18.{index % 3}.{index + 2}", node=f"n{index % 3}", app=f"x{index}")
        )
        store.put("Pod", key, changed)
        final[key] = changed
        store.remove("Pod", "b/p5")
        final.pop("b/p5", None)
        fresh = Store("n1")
        for k, obj in final.items():
            fresh.put("Pod", k, obj)
        assert _store_state(store) == _store_state(fresh)
