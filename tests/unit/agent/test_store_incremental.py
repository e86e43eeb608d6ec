"""The store's incremental views and the planner's hints equal a fresh store and a fresh plan.

Why this module exists: after each change the agent's store updates its live, local and kept
pods for the changed pods only and tells the planner which pods changed (``PodChanges``), so
that one change costs O(changed pods), not O(pods). These tests apply random sequences of
changes (labels, placement, phase, addresses, pods added and removed, namespaces relabelled,
policies added and removed; snapshots taken and not planned) and hold every snapshot to a
fresh store's and every plan to a fresh plan; and check that a label change does not make
the planner look at every pod.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest
from tests.builders import namespace, pod, policy
from tests.unit.agent.test_relevant import APPS, NAMESPACES, PORTS, _rule

import kubefence.dataplane.nft._peers as peers_module
from kubefence.agent._store import Snapshot, Store
from kubefence.dataplane.nft import MemoisedRenderer, render_plan
from kubefence.dataplane.nft._plan import plan_ruleset

NODE = "n1"
Objects = dict[tuple[str, str], dict[str, Any]]


def _pod(rng: random.Random, key: str, number: int) -> dict[str, Any]:
    obj = pod(key, ip=f"198.18.{number % 4}.{10 + number}", node=rng.choice(("n1", "n1", "n2")),
              ports=rng.sample(PORTS, k=rng.randrange(0, 3)), app=rng.choice(APPS))  # fmt: skip
    return obj


def _policy(rng: random.Random, key: str) -> dict[str, Any]:
    types = rng.choice((["Ingress"], ["Egress"], ["Ingress", "Egress"]))
    spec: dict[str, Any] = {
        "podSelector": rng.choice(({}, {"matchLabels": {"app": rng.choice(APPS)}})),
        "policyTypes": types,
    }
    for direction in ("ingress", "egress"):
        if direction.capitalize() in types:
            spec[direction] = [_rule(rng, direction) for _ in range(rng.randrange(0, 3))]
    return policy(key, spec)


def _cluster(rng: random.Random) -> Objects:
    objects: Objects = {}
    for ns in NAMESPACES:
        objects[("Namespace", ns)] = namespace(ns, team=rng.choice(("x", "y")))
    for i in range(20):
        key = f"{rng.choice(NAMESPACES)}/p{i}"
        objects[("Pod", key)] = _pod(rng, key, i)
    for i in range(rng.randrange(1, 6)):
        key = f"{rng.choice(NAMESPACES)}/q{i}"
        objects[("NetworkPolicy", key)] = _policy(rng, key)
    return objects


def _step(rng: random.Random, objects: Objects, store: Store, counter: list[int]) -> None:
    """One random change, to ``objects`` and to ``store`` as the informer would give it."""
    pods = sorted(key for kind, key in objects if kind == "Pod")
    what = rng.choice(["relabel"] * 4 + ["move", "phase", "readdress", "remove", "add",
                                         "namespace", "policy", "unpolicy"])  # fmt: skip
    if what == "add" or not pods:
        counter[0] += 1
        key = f"{rng.choice(NAMESPACES)}/new{counter[0]}"
        obj = _pod(rng, key, 30 + counter[0] % 200)
        objects[("Pod", key)] = obj
        store.put("Pod", key, copy.deepcopy(obj))
    elif what == "namespace":
        ns = rng.choice(NAMESPACES)
        obj = namespace(ns, team=rng.choice(("x", "y", "z")))
        objects[("Namespace", ns)] = obj
        store.put("Namespace", ns, copy.deepcopy(obj))
    elif what == "policy":
        counter[0] += 1
        key = f"{rng.choice(NAMESPACES)}/r{counter[0]}"
        obj = _policy(rng, key)
        objects[("NetworkPolicy", key)] = obj
        store.put("NetworkPolicy", key, copy.deepcopy(obj))
    elif what == "unpolicy":
        keys = sorted(key for kind, key in objects if kind == "NetworkPolicy")
        if keys:
            key = rng.choice(keys)
            del objects[("NetworkPolicy", key)]
            store.remove("NetworkPolicy", key)
    else:
        key = rng.choice(pods)
        if what == "remove":
            del objects[("Pod", key)]
            store.remove("Pod", key)
            return
        obj = copy.deepcopy(objects[("Pod", key)])
        if what == "relabel":
            obj["metadata"]["labels"] = {"app": rng.choice(APPS)}
        elif what == "move":
            obj["spec"]["nodeName"] = rng.choice(("n1", "n2"))
        elif what == "phase":
            obj["status"]["phase"] = rng.choice(("Running", "Succeeded"))
        else:
            ip = f"198.18.{rng.randrange(4)}.{240 + rng.randrange(10)}"
            taken = {o["status"]["podIP"] for (kind, _), o in objects.items() if kind == "Pod"}
            if ip in taken:
                return
            obj["status"].update(podIP=ip, podIPs=[{"ip": ip}])
        objects[("Pod", key)] = obj
        store.put("Pod", key, copy.deepcopy(obj))


def _fresh(objects: Objects) -> Snapshot:
    store = Store(NODE)
    for (kind, key), obj in sorted(objects.items()):
        store.put(kind, key, copy.deepcopy(obj))
    return store.snapshot()


def _plan_text(renderer: MemoisedRenderer | None, snap: Snapshot) -> str:
    if renderer is None:
        plan = plan_ruleset(snap.inventory, addresses=snap.addresses, local=snap.local)
    else:
        renderer.memo.expect(snap.changes)
        plan = renderer.plan(snap.inventory, addresses=snap.addresses, local=snap.local)
    return render_plan(plan)


@pytest.mark.parametrize("seed", range(40))
def test_random_changes_keep_the_snapshot_and_the_plan_equal_to_fresh_ones(seed: int) -> None:
    rng = random.Random(seed)
    objects = _cluster(rng)
    store = Store(NODE)
    for (kind, key), obj in sorted(objects.items()):
        store.put(kind, key, copy.deepcopy(obj))
    renderer = MemoisedRenderer()
    _plan_text(renderer, store.snapshot())
    counter = [0]
    for _ in range(25):
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            _step(rng, objects, store, counter)
        snap = store.snapshot()
        fresh = _fresh(objects)
        assert snap.inventory.pods == fresh.inventory.pods
        assert snap.inventory.policies == fresh.inventory.policies
        assert snap.inventory.namespaces == fresh.inventory.namespaces
        assert snap.local == fresh.local
        assert snap.addresses == fresh.addresses
        assert snap.pods_total == fresh.pods_total
        if rng.random() < 0.15:
            continue  # a snapshot nobody planned: the next hint's base is unknown to the memo
        assert _plan_text(renderer, snap) == _plan_text(None, fresh)


def test_a_label_change_does_not_make_the_planner_look_at_every_pod(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(7)
    objects = _cluster(rng)
    store = Store(NODE)
    for (kind, key), obj in sorted(objects.items()):
        store.put(kind, key, copy.deepcopy(obj))
    renderer = MemoisedRenderer()
    _plan_text(renderer, store.snapshot())
    _plan_text(renderer, store.snapshot())  # the memo now knows the store's version
    scans: list[int] = []
    original = peers_module.Context._scan

    def counting(self: Any, *args: Any) -> Any:
        scans.append(1)
        return original(self, *args)

    monkeypatch.setattr(peers_module.Context, "_scan", counting)
    key = next(key for kind, key in sorted(objects) if kind == "Pod")
    for app in ("web", "db", "api"):
        obj = copy.deepcopy(objects[("Pod", key)])
        obj["metadata"]["labels"] = {"app": app}
        objects[("Pod", key)] = obj
        store.put("Pod", key, copy.deepcopy(obj))
        snap = store.snapshot()
        assert snap.changes is not None
        assert set(snap.changes.pods) == {key}
        assert _plan_text(renderer, snap) == _plan_text(None, _fresh(objects))
    assert scans == []


def test_a_new_pod_keeps_the_planner_s_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pod that gains an address is found by a look at every pod, not by a new context."""
    rng = random.Random(3)
    objects = _cluster(rng)
    store = Store(NODE)
    for (kind, key), obj in sorted(objects.items()):
        store.put(kind, key, copy.deepcopy(obj))
    renderer = MemoisedRenderer()
    _plan_text(renderer, store.snapshot())
    made: list[int] = []
    original = peers_module.Context.__init__

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        made.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(peers_module.Context, "__init__", counting)
    for number in range(3):
        key = f"a/late{number}"
        obj = _pod(rng, key, 200 + number)
        objects[("Pod", key)] = obj
        store.put("Pod", key, copy.deepcopy(obj))
        made.clear()
        incremental = _plan_text(renderer, store.snapshot())
        assert made == []
        assert incremental == _plan_text(None, _fresh(objects))
