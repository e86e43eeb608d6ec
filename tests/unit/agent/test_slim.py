"""The slim pod list decode gives the store the same pods, problems and events as plain JSON.

Why this module exists: the agent's pod informer reads its list pages with ``decode_pod_page``,
which skips the fields the agent never reads. These tests hold it to the plain decode: on pages
of random pods, valid and broken in every way ``test_decode`` knows (and in shapes the slim
reader refuses), the store's model and problem of every pod are the ones the plain decode
gives, and what the decode keeps of each pod is the plain decode's minus skipped fields.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest
from tests.unit.agent.test_decode import _BREAKS, _FINE, _random_pod

from kubefence.agent._slim import _Metadata, decode_pod_page
from kubefence.agent._store import Store
from kubefence.api._parse_fields import METADATA_FIELDS
from kubefence.client._informer import object_key

# Shapes the slim reader refuses (the page is then decoded plainly).
_ODD = (
    ("metadata list", lambda o: o.update(metadata=[])),
    ("containers object", lambda o: o["spec"].update(containers={"name": "c"})),
    ("ports object", lambda o: o["spec"]["containers"][0].update(ports={"containerPort": 1})),
    ("init container", lambda o: o["spec"].update(initContainers=["x"])),
    ("unknown metadata field", lambda o: o["metadata"].update(lables={"a": "b"})),
    ("unknown port field", lambda o: o["spec"]["containers"][0]["ports"].append(
        {"containerPort": 81, "contianerPort": 82})),
)  # fmt: skip
_SERVER = {  # fields an API server adds that no part of the agent reads
    "imagePullPolicy": "IfNotPresent",
    "terminationMessagePath": "/dev/termination-log",
    "resources": {"limits": {"cpu": "1"}},
    "env": [{"name": "A", "value": "b"}],
}


def _page(rng: random.Random, size: int) -> tuple[dict[str, Any], list[str]]:
    items, applied = [], []
    for index in range(size):
        obj = _random_pod(rng)
        obj["metadata"]["name"] = f"p{index}"
        for container in obj["spec"]["containers"]:
            container.update(copy.deepcopy(_SERVER))
        obj["spec"]["restartPolicy"] = "Always"
        obj["status"] = dict(obj.get("status") or {}, qosClass="BestEffort", conditions=[{}])
        mutations = rng.sample(_FINE, k=rng.randrange(0, 3))
        if rng.random() < 0.12:
            mutations.append(rng.choice(_BREAKS))
        for name, mutate in mutations:
            mutate(obj)
            applied.append(name)
        items.append(obj)
    page = {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "42"}}
    return dict(page, items=items), applied


def _stored(items: list[dict[str, Any]]) -> tuple[dict[str, object], dict[str, str]]:
    store = Store("n1", unsupported=())
    store.put_pods([(object_key(obj), obj) for obj in items])
    snapshot = store.snapshot()
    models = dict(store._models["Pod"])  # every pod kept, planned or not
    problems = {p.key: p.message for p in snapshot.problems}
    return models, problems


def _without_skipped(value: Any, kept: Any) -> Any:
    """``value`` reduced to the keys of ``kept`` (recursively): what the slim decode keeps."""
    if isinstance(value, dict) and isinstance(kept, dict):
        return {k: _without_skipped(v, kept[k]) for k, v in value.items() if k in kept}
    if isinstance(value, list) and isinstance(kept, list) and len(value) == len(kept):
        return [_without_skipped(v, k) for v, k in zip(value, kept, strict=True)]
    return value


@pytest.mark.parametrize("seed", range(30))
def test_the_store_sees_the_same_pods_as_from_plain_json(seed: int) -> None:
    rng = random.Random(seed)
    page, applied = _page(rng, 30)
    data = json.dumps(page).encode()
    slim = decode_pod_page(data)
    plain = json.loads(data)
    assert slim["metadata"] == plain["metadata"]
    assert _stored(slim["items"]) == _stored(plain["items"]), applied
    if "kind" in slim:  # a shape the slim reader refuses (see ``_ODD``): decoded plainly
        assert slim == plain
        return
    for got, full in zip(slim["items"], plain["items"], strict=True):
        full["metadata"].pop("managedFields", None)
        assert got == _without_skipped(full, got)
        assert got["metadata"] == full["metadata"]
        assert got.get("status", {}).keys() <= {"phase", "podIP", "podIPs"}


def test_server_fields_are_skipped_and_managed_fields_dropped() -> None:
    page, _ = _page(random.Random(3), 3)
    page["items"][0]["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    got = decode_pod_page(json.dumps(page).encode())["items"][0]
    assert "managedFields" not in got["metadata"]
    assert got["spec"].keys() <= {"containers", "nodeName", "hostNetwork", "initContainers"}
    assert got["spec"]["containers"][0].keys() <= {"name", "image", "ports"}


@pytest.mark.parametrize("name", [name for name, _ in _ODD])
def test_a_shape_the_slim_reader_refuses_is_decoded_plainly(name: str) -> None:
    page, _ = _page(random.Random(5), 4)
    dict(_ODD)[name](page["items"][1])
    data = json.dumps(page).encode()
    assert decode_pod_page(data) == json.loads(data)


def test_the_metadata_shape_names_every_field_the_parse_knows() -> None:
    assert set(_Metadata.__struct_fields__) == METADATA_FIELDS


@pytest.mark.parametrize(
    "text",
    [
        b'{"items":[{"metadata":{"name":"a","generation":123456789012345678901234567890},'
        b'"spec":{"containers":[{"name":"c","image":"i","ports":[{"containerPort":1e3},'
        b'{"containerPort":99999999999999999999999}]}]}}]}',
        b'{"items":[{"metadata":{"name":"a","name":"b","labels":{"x":"1","x":"2"}}}]}',
        b'{"items":[{"metadata":null,"spec":null,"status":null}],"metadata":{"continue":""}}',
        b'{"items":null}',
    ],
)
def test_numbers_duplicate_keys_and_nulls_read_as_plain_json_reads_them(text: bytes) -> None:
    assert decode_pod_page(text) == json.loads(text)
