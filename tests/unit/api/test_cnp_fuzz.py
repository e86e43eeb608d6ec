"""Tiered policies mutated at every field end in a clean result or a clean ValidationError.

Why this module exists: the loader's contract (no input ends in a traceback, held for the other
kinds by ``tests/unit/sources/test_sources_fuzz.py``) must hold for ClusterNetworkPolicy,
AdminNetworkPolicy and BaselineAdminNetworkPolicy too, and whatever loads must be decidable.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.unit.sources.test_sources_fuzz import WRONG_VALUES, json_values

from kubefence.api import Inventory
from kubefence.errors import FieldError, ValidationError
from kubefence.semantics import decide
from kubefence.sources.objects import inventory_from_objects

_PEERS: list[dict[str, Any]] = [
    {"namespaces": {"matchLabels": {"team": "a"}}},
    {"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "web"}}}},
]
_EGRESS_PEERS: list[dict[str, Any]] = [
    *_PEERS,
    {"networks": ["198.18.0.0/15", "fd00::/8"]},
    {"nodes": {"matchExpressions": [{"key": "role", "operator": "Exists"}]}},
    {"domainNames": ["*.example.org"]},
]
SEED: list[dict[str, Any]] = [
    {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "test", "labels": {"team": "a"}},
    },
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "test", "labels": {"app": "web"}},
        "spec": {
            "containers": [
                {"name": "c", "image": "i", "ports": [{"name": "http", "containerPort": 80}]}
            ]
        },
        "status": {"podIP": "198.18.0.1"},
    },
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "cli", "namespace": "test"},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
        "status": {"podIP": "198.18.0.2"},
    },
    {
        "apiVersion": "policy.networking.k8s.io/v1alpha2",
        "kind": "ClusterNetworkPolicy",
        "metadata": {"name": "cnp"},
        "spec": {
            "tier": "Admin",
            "priority": 5,
            "subject": {
                "pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "web"}}}
            },
            "ingress": [
                {
                    "name": "in",
                    "action": "Pass",
                    "from": copy.deepcopy(_PEERS),
                    "protocols": [
                        {"tcp": {"destinationPort": {"number": 80}}},
                        {"udp": {"destinationPort": {"range": {"start": 1, "end": 9}}}},
                        {"destinationNamedPort": "http"},
                    ],
                }
            ],
            "egress": [{"action": "Deny", "to": copy.deepcopy(_EGRESS_PEERS)}],
        },
    },
    {
        "apiVersion": "policy.networking.k8s.io/v1alpha1",
        "kind": "AdminNetworkPolicy",
        "metadata": {"name": "anp"},
        "spec": {
            "priority": 1,
            "subject": {"namespaces": {}},
            "ingress": [
                {
                    "action": "Allow",
                    "from": copy.deepcopy(_PEERS),
                    "ports": [
                        {"portNumber": {"protocol": "UDP", "port": 53}},
                        {"portRange": {"start": 1000, "end": 2000}},
                        {"namedPort": "http"},
                    ],
                }
            ],
        },
    },
    {
        "apiVersion": "policy.networking.k8s.io/v1alpha1",
        "kind": "BaselineAdminNetworkPolicy",
        "metadata": {"name": "default"},
        "spec": {
            "subject": {"namespaces": {}},
            "egress": [{"action": "Deny", "to": [{"networks": ["198.18.0.0/16"]}]}],
        },
    },
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


TIER_PATHS = [p for p in _paths(SEED) if len(p) > 1 and p[0] >= 3]


def _replace(path: tuple[Any, ...], value: Any) -> list[Any]:
    result: list[Any] = copy.deepcopy(SEED)
    target: Any = result
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return result


def _load_and_decide(objects: list[Any]) -> None:
    """A clean ValidationError, or an inventory in which every pod pair can be decided."""
    problems: tuple[FieldError, ...] = ()
    inventory: Inventory | None
    try:
        inventory = inventory_from_objects(objects)
    except ValidationError as exc:
        problems = exc.problems
        inventory = None
    if inventory is None:
        assert problems
        assert all(p.message and p.path is not None for p in problems)
        return
    for src in ("test/web", "test/cli"):
        for dst in ("test/web", "test/cli", "198.18.9.9", "198.51.100.1"):
            if src != dst:
                decide(inventory, src, dst, port=80)


def test_seed_is_valid_and_decidable() -> None:
    inventory = inventory_from_objects(copy.deepcopy(SEED))
    assert len(inventory.admin_policies) == 3
    _load_and_decide(copy.deepcopy(SEED))


@pytest.mark.parametrize("wrong", WRONG_VALUES, ids=repr)
def test_wrong_value_at_every_tier_field_is_handled_cleanly(wrong: Any) -> None:
    for path in TIER_PATHS:
        _load_and_decide(_replace(path, wrong))


@given(st.sampled_from(TIER_PATHS), json_values)
def test_random_values_at_random_tier_fields(path: tuple[Any, ...], value: Any) -> None:
    _load_and_decide(_replace(path, value))
