"""``ReachabilityModel``: after every single change, equal to recomputing from scratch.

Why this module exists: incremental updates recompute only the rows and columns a change can
affect; a missed dependency would leave stale verdicts that no from-scratch test can see. Here
random clusters take random sequences of changes (policies added, replaced and removed,
namespaces relabelled, pods added and removed) and the model is compared with
``compute_matrix`` of the changed objects after each one.
"""

from __future__ import annotations

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
