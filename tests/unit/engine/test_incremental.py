"""``ReachabilityModel``: after every single change, equal to recomputing from scratch.

Why this module exists: incremental updates recompute only the rows and columns a change can
affect; a missed dependency would leave stale verdicts that no from-scratch test can see. Here
random clusters take random sequences of changes (policies added, replaced and removed,
namespaces relabelled, pods added and removed) and the model is compared with
``compute_matrix`` of the changed objects after each one.
"""

from __future__ import annotations

from ipaddress import ip_address, ip_network
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.property.strategies import (
    NAMESPACES,
    NS_LABELS,
    inventories,
    labels,
    pods,
    policies,
)

from kubefence.api import METADATA_NAME_LABEL, Inventory, Labels, Namespace, Protocol
from kubefence.engine import ReachabilityModel, compute_matrix
from kubefence.errors import InputError

changes = st.lists(
    st.one_of(
        st.tuples(st.just("put_policy"), st.sampled_from(("np0", "np1", "np9")).flatmap(policies)),
        st.tuples(st.just("remove_policy"), st.integers(0, 5)),
        st.tuples(st.just("ns_labels"), st.sampled_from(NAMESPACES), labels(NS_LABELS)),
        st.tuples(st.just("add_pod"), st.integers(0, 99).flatmap(lambda k: pods(f"new{k}"))),
        st.tuples(st.just("remove_pod"), st.integers(0, 9)),
    ),
    max_size=6,
)


class _State:
    """The objects a model should reflect, rebuilt into an Inventory for the oracle."""

    def __init__(self, inventory: Inventory) -> None:
        self.namespaces = {n.name: n for n in inventory.namespaces}
        self.pods = {p.key: p for p in inventory.pods}
        self.policies = {p.key: p for p in inventory.policies}

    def inventory(self) -> Inventory:
        return Inventory.of(
            namespaces=list(self.namespaces.values()),
            pods=list(self.pods.values()),
            policies=list(self.policies.values()),
        )


def _apply(model: ReachabilityModel, state: _State, change: tuple[Any, ...]) -> None:
    kind = change[0]
    if kind == "put_policy":
        model.replace_policy(change[1])
        state.policies[change[1].key] = change[1]
    elif kind == "remove_policy" and state.policies:
        key = sorted(state.policies)[change[1] % len(state.policies)]
        model.remove_policy(key)
        del state.policies[key]
    elif kind == "ns_labels":
        name, new = change[1], change[2]
        model.set_namespace_labels(name, new)
        state.namespaces[name] = Namespace(name, Labels({**new, METADATA_NAME_LABEL: name}))
    elif kind == "add_pod" and change[1].key not in state.pods:
        model.add_pod(change[1])
        state.pods[change[1].key] = change[1]
    elif kind == "remove_pod" and state.pods:
        key = sorted(state.pods)[change[1] % len(state.pods)]
        model.remove_pod(key)
        del state.pods[key]


@given(
    inventories(max_pods=5, max_policies=3),
    changes,
    st.sampled_from((80, 53, "http", "dns")),
    st.sampled_from((Protocol.TCP, Protocol.UDP)),
)
def test_model_equals_recompute_after_every_change(
    inventory: Inventory, steps: list[tuple[Any, ...]], port: int | str, protocol: Protocol
) -> None:
    """After each add/replace/remove of a policy or pod or a namespace relabel, the model's
    matrix equals compute_matrix on the changed objects."""
    model = ReachabilityModel(inventory, port=port, protocol=protocol)
    state = _State(inventory)
    assert model.matrix().rows() == compute_matrix(inventory, port=port, protocol=protocol).rows()
    for step in steps:
        _apply(model, state, step)
        expected = compute_matrix(state.inventory(), port=port, protocol=protocol)
        got = model.matrix()
        assert got.endpoints == expected.endpoints
        assert got.rows() == expected.rows(), step[0]


def test_model_grows_beyond_its_initial_capacity() -> None:
    """Adding many pods reallocates the state and keeps every verdict."""
    from kubefence.api import LabelSelector, NetworkPolicy, Pod, PolicyType

    deny = NetworkPolicy("a", "deny", LabelSelector(), (PolicyType.INGRESS,))
    model = ReachabilityModel(Inventory.of(policies=[deny]), port=80)
    added = [Pod("a", f"p{i:02d}") for i in range(40)] + [Pod("b", "free")]
    for pod in added:
        model.add_pod(pod)
    expected = compute_matrix(Inventory.of(pods=added, policies=[deny]), port=80)
    assert model.matrix().rows() == expected.rows()


def test_model_rejects_unknown_or_duplicate_objects() -> None:
    """Removing what is not there, or adding what is, is an InputError."""
    from kubefence.api import Pod

    model = ReachabilityModel(Inventory.of(pods=[Pod("a", "x")]), port=80)
    with pytest.raises(InputError):
        model.remove_pod("a/nope")
    with pytest.raises(InputError):
        model.add_pod(Pod("a", "x"))
    with pytest.raises(InputError):
        model.remove_policy("a/nope")


class_changes = st.lists(
    st.one_of(
        st.tuples(st.just("copy_policy"), st.integers(0, 9), st.integers(0, 9)),
        st.tuples(st.just("remove_policy"), st.integers(0, 9)),
        st.tuples(st.just("restore_policy"), st.integers(0, 9)),
        st.tuples(st.just("clone_pod"), st.integers(0, 9), st.integers(0, 99)),
        st.tuples(st.just("remove_pod"), st.integers(0, 9)),
    ),
    max_size=8,
)


@given(
    inventories(max_pods=8, max_policies=5),
    class_changes,
    st.sampled_from((80, 53, "http", "dns")),
    st.sampled_from((Protocol.TCP, Protocol.UDP)),
)
def test_class_level_changes_equal_recompute_without_rebuilding(
    inventory: Inventory, steps: list[tuple[Any, ...]], port: int | str, protocol: Protocol
) -> None:
    """Changes that need no new class (a policy given another policy's spec, removed, put
    back; a pod like an existing one added; a pod removed) are applied to the class matrices
    in place (no rebuild), and the result equals compute_matrix after every one."""
    from dataclasses import replace

    model = ReachabilityModel(inventory, port=port, protocol=protocol)
    state = _State(inventory)
    removed = []
    for step in steps:
        kind = step[0]
        keys = sorted(state.policies)
        if kind == "copy_policy" and keys:
            target = state.policies[keys[step[1] % len(keys)]]
            spec = state.policies[keys[step[2] % len(keys)]]
            new = replace(spec, namespace=target.namespace, name=target.name)
            model.replace_policy(new)
            state.policies[new.key] = new
        elif kind == "remove_policy" and keys:
            key = keys[step[1] % len(keys)]
            model.remove_policy(key)
            removed.append(state.policies.pop(key))
        elif kind == "restore_policy" and removed:
            back = removed.pop(step[1] % len(removed))
            model.add_policy(back)
            state.policies[back.key] = back
        elif kind == "clone_pod" and state.pods:
            like = state.pods[sorted(state.pods)[step[1] % len(state.pods)]]
            clone = replace(like, name=f"clone{step[2]}")
            if clone.key in state.pods:
                continue
            model.add_pod(clone)
            state.pods[clone.key] = clone
        elif kind == "remove_pod" and state.pods:
            key = sorted(state.pods)[step[1] % len(state.pods)]
            model.remove_pod(key)
            del state.pods[key]
        else:
            continue
        expected = compute_matrix(state.inventory(), port=port, protocol=protocol)
        got = model.matrix()
        assert got.endpoints == expected.endpoints
        assert got.rows() == expected.rows(), kind
        assert got.namespace_summary().to_json() == expected.namespace_summary().to_json()
    assert model.rebuilds == 0


def test_new_ip_block_or_unlike_pod_rebuilds_and_stays_exact() -> None:
    """A policy naming an ipBlock no policy named before, a pod unlike every other and a
    namespace relabel each rebuild the state (the classes change); the result stays exact."""
    from kubefence.api import (
        IPBlock,
        LabelSelector,
        NetworkPolicy,
        Peer,
        Pod,
        PolicyType,
        Rule,
    )

    web = Pod("a", "web", labels=Labels({"app": "web"}), ips=(ip_address("198.18.0.5"),))
    db = Pod("a", "db", labels=Labels({"app": "db"}), ips=(ip_address("198.18.0.9"),))
    deny = NetworkPolicy("a", "deny", LabelSelector(), (PolicyType.INGRESS,))
    inventory = Inventory.of(pods=[web, db], policies=[deny])
    model = ReachabilityModel(inventory, port=80)
    block = IPBlock(ip_network("198.18.0.0/29"))
    allow = NetworkPolicy(
        "a",
        "allow",
        LabelSelector(),
        (PolicyType.INGRESS,),
        ingress=(Rule(peers=(Peer(ip_block=block),)),),
    )
    model.add_policy(allow)
    assert model.rebuilds == 1
    assert model.matrix().allowed("a/web", "a/db")
    assert not model.matrix().allowed("a/db", "a/web")
    model.add_pod(Pod("a", "new", labels=Labels({"app": "new"})))
    assert model.rebuilds == 2
    model.set_namespace_labels("a", {"team": "red"})
    assert model.rebuilds == 3
    fresh = Inventory.of(
        namespaces=[Namespace("a", Labels({"team": "red", METADATA_NAME_LABEL: "a"}))],
        pods=[web, db, Pod("a", "new", labels=Labels({"app": "new"}))],
        policies=[deny, allow],
    )
    assert model.matrix().rows() == compute_matrix(fresh, port=80).rows()
