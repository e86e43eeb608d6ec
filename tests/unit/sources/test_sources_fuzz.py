"""No input ends in anything but a result or a ``KubefenceError``.

Random bytes, random YAML-ish text, and valid manifests mutated at every field (wrong types,
odd values, deep nesting) go through both loaders. The assertion is the contract of the CLI:
a clean inventory, or a clean error whose problems all carry a message.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from kubefence.api import Inventory
from kubefence.errors import FieldError, KubefenceError, ValidationError
from kubefence.sources.files import load_paths
from kubefence.sources.objects import inventory_from_objects

BASE: list[dict[str, Any]] = [
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
            "hostNetwork": False,
            "nodeName": "n1",
            "containers": [
                {
                    "name": "c",
                    "image": "nginx",
                    "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                }
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": "198.18.0.1",
            "podIPs": [{"ip": "198.18.0.1"}, {"ip": "fd00::1"}],
        },
    },
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api"},
        "spec": {
            "replicas": 2,
            "selector": {
                "matchLabels": {"app": "api"},
                "matchExpressions": [{"key": "tier", "operator": "Exists"}],
            },
            "template": {
                "metadata": {"labels": {"app": "api", "tier": "b"}},
                "spec": {"containers": [{"name": "c", "image": "api"}]},
            },
        },
    },
    {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly"},
        "spec": {
            "schedule": "0 3 * * *",
            "jobTemplate": {
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "job"}]}}}
            },
        },
    },
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"app": "web"},
            "clusterIP": "198.19.0.1",
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    },
    {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "p", "namespace": "test"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "web"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [
                        {
                            "podSelector": {
                                "matchExpressions": [
                                    {"key": "app", "operator": "In", "values": ["a", "b"]}
                                ]
                            },
                            "namespaceSelector": {"matchLabels": {"team": "a"}},
                        },
                        {"ipBlock": {"cidr": "198.18.0.0/15", "except": ["198.19.0.0/16"]}},
                    ],
                    "ports": [{"protocol": "TCP", "port": 80, "endPort": 90}, {"port": "http"}],
                }
            ],
            "egress": [{"to": [{"namespaceSelector": {}}], "ports": [{"protocol": "UDP"}]}],
        },
    },
]

WRONG_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    70000,
    10**12,
    1.5,
    "",
    "x",
    "Bad Value!",
    [],
    [1],
    {},
    {"a": 1},
    {1: "x"},
    {None: []},
    [[[[]]]],
    "198.18.0.0/15",
]


def _assert_clean(load: Any) -> Inventory | None:
    problems: tuple[FieldError, ...] | None = None
    try:
        result = load()
    except ValidationError as exc:
        problems = exc.problems
        result = str(exc)
    except KubefenceError:
        return None
    if problems is not None:
        assert problems
        assert all(p.message for p in problems)
        return None
    assert isinstance(result, Inventory)
    return result


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


def _replace(objects: list[dict[str, Any]], path: tuple[Any, ...], value: Any) -> list[Any]:
    result: list[Any] = copy.deepcopy(objects)
    if not path:
        return [value]
    target: Any = result
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return result


ALL_PATHS = [p for p in _paths(BASE) if p]


def test_base_manifests_are_valid() -> None:
    """The fuzzing seed set is itself valid, so every rejection below comes from a mutation."""
    inventory = inventory_from_objects(copy.deepcopy(BASE))
    assert len(inventory.pods) == 4


@pytest.mark.parametrize("wrong", WRONG_VALUES, ids=repr)
def test_wrong_value_at_every_field_is_handled_cleanly(wrong: Any) -> None:
    """Replacing any field of the seed manifests with a wrong-typed value never crashes."""
    for path in ALL_PATHS:
        mutated = _replace(BASE, path, wrong)
        _assert_clean(lambda m=mutated: inventory_from_objects(m))


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=4) | st.dictionaries(
        st.text(max_size=12), children, max_size=4
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    _containers,
    max_leaves=30,
)


@given(st.sampled_from(ALL_PATHS), json_values)
def test_random_values_at_random_fields(path: tuple[Any, ...], value: Any) -> None:
    """Random JSON-like values anywhere in the seed manifests give a clean result or error."""
    _assert_clean(lambda: inventory_from_objects(_replace(BASE, path, value)))


@given(st.sampled_from(ALL_PATHS), json_values)
def test_random_values_through_yaml_files(path: tuple[Any, ...], value: Any) -> None:
    """The same mutations written as YAML and read back by the file loader stay clean."""
    text = yaml.safe_dump_all(_replace(BASE, path, value))
    _assert_clean(lambda: load_paths(["-"], stdin=io.BytesIO(text.encode())))


@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    """Arbitrary bytes on stdin give a clean result or a clean error."""
    _assert_clean(lambda: load_paths(["-"], stdin=io.BytesIO(data)))


yamlish = st.text(
    alphabet=st.sampled_from(list("ab:-[]{},&*!|>'\"#\n\t %@`?<=~019.")), max_size=200
)


@given(yamlish)
def test_random_yaml_punctuation(text: str) -> None:
    """Text made of YAML's special characters gives a clean result or a clean error."""
    _assert_clean(lambda: load_paths(["-"], stdin=io.BytesIO(text.encode())))


@given(st.integers(min_value=1, max_value=3000), st.sampled_from(["[", "{a: ", "- "]))
def test_deep_nesting(depth: int, opener: str) -> None:
    """Deeply nested documents in flow and block style are handled cleanly."""
    if opener == "- ":
        text = "".join("  " * i + "- \n" for i in range(min(depth, 400)))
    else:
        closer = "]" if opener == "[" else "}"
        text = opener * depth + "1" + closer * depth
    _assert_clean(lambda: load_paths(["-"], stdin=io.BytesIO(text.encode())))
