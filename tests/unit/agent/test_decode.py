"""``pod_record`` gives the model the full parse gives, or hands the object to it.

Why this module exists: the agent reads its first list's pods with ``pod_record`` instead of
the full validation; these tests hold it to the full parse on random pods, valid and broken
in the ways the full parse reports: whenever it answers, the full parse must give the same
model without a problem; a valid pod must never be left to the full parse.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest
from tests.builders import pod

from kubefence.agent._decode import GONE, pod_record
from kubefence.agent._store import _manifest
from kubefence.errors import ValidationError
from kubefence.sources.objects import inventory_from_objects

_BREAKS = (
    ("label key", lambda o: o["metadata"]["labels"].update({"-bad": "x"})),
    ("label value", lambda o: o["metadata"]["labels"].update({"app": "a b"})),
    ("label type", lambda o: o["metadata"]["labels"].update({"n": 3})),
    ("labels list", lambda o: o["metadata"].update(labels=[])),
    ("name", lambda o: o["metadata"].update(name="Bad_Name")),
    ("namespace", lambda o: o["metadata"].update(namespace="a.b")),
    ("metadata field", lambda o: o["metadata"].update(lables={"a": "b"})),
    ("annotation", lambda o: o["metadata"].update(annotations={"a": 1})),
    ("port 0", lambda o: o["spec"]["containers"][0]["ports"].append({"containerPort": 0})),
    ("port bool", lambda o: o["spec"]["containers"][0]["ports"].append({"containerPort": True})),
    ("port big", lambda o: o["spec"]["containers"][0]["ports"].append({"containerPort": 70000})),
    ("port name", lambda o: o["spec"]["containers"][0]["ports"].append(
        {"containerPort": 81, "name": "a--b"})),
    ("port name twice", lambda o: o["spec"]["containers"][0]["ports"].extend(
        [{"containerPort": 81, "name": "x"}, {"containerPort": 82, "name": "x"}])),
    ("protocol", lambda o: o["spec"]["containers"][0]["ports"].append(
        {"containerPort": 81, "protocol": "ICMP"})),
    ("protocol type", lambda o: o["spec"]["containers"][0]["ports"].append(
        {"containerPort": 81, "protocol": ["TCP"]})),
    ("port field", lambda o: o["spec"]["containers"][0]["ports"].append(
        {"containerPort": 81, "contianerPort": 82})),
    ("host port", lambda o: o["spec"]["containers"][0]["ports"].append(
        {"containerPort": 81, "hostPort": -1})),
    ("container name", lambda o: o["spec"]["containers"][0].update(name="C")),
    ("no image", lambda o: o["spec"]["containers"][0].pop("image")),
    ("two containers one name", lambda o: o["spec"]["containers"].append(
        dict(o["spec"]["containers"][0], ports=[]))),
    ("no containers", lambda o: o["spec"].update(containers=[])),
    ("init container", lambda o: o["spec"].update(initContainers=["x"])),
    ("hostNetwork", lambda o: o["spec"].update(hostNetwork="yes")),
    ("node", lambda o: o["spec"].update(nodeName="Node_1")),
    ("ip", lambda o: o.setdefault("status", {}).update(podIP="198.18.1.300")),
    ("ip zero", lambda o: o.setdefault("status", {}).update(podIP="198.18.01.3")),
    ("ip zone", lambda o: o.setdefault("status", {}).update(podIPs=[{"ip": "fe80::1%eth0"}])),
    ("ips type", lambda o: o.setdefault("status", {}).update(podIPs="198.18.1.3")),
    ("phase type", lambda o: o.setdefault("status", {}).update(phase=1)),
)  # fmt: skip
_FINE = (
    ("finished", lambda o: o.setdefault("status", {}).update(phase="Succeeded")),
    ("running", lambda o: o.setdefault("status", {}).update(phase="Running")),
    ("dual stack", lambda o: o.setdefault("status", {}).update(
        podIP="198.18.3.4", podIPs=[{"ip": "198.18.3.4"}, {"ip": "fd00::3:4"}])),
    ("host network", lambda o: o["spec"].update(hostNetwork=True)),
    ("server metadata", lambda o: o["metadata"].update(
        uid="u", resourceVersion="7", managedFields=[{"manager": "k"}], ownerReferences=[])),
    ("empty port name", lambda o: o["spec"]["containers"][0]["ports"].append(
        {"containerPort": 81, "name": ""})),
    ("prefixed label", lambda o: o["metadata"]["labels"].update({"example.com/tier": ""})),
    ("init containers", lambda o: o["spec"].update(initContainers=[{"name": "i"}])),
)  # fmt: skip


def _random_pod(rng: random.Random) -> dict[str, Any]:
    ports = rng.sample(
        [{"containerPort": 80, "name": "http"}, {"containerPort": 53, "protocol": "UDP"},
         {"containerPort": 9000, "name": "metrics", "protocol": "SCTP"}, {"containerPort": 8080}],
        k=rng.randrange(0, 4),
    )  # fmt: skip
    ip = f"198.18.{rng.randrange(4)}.{rng.randrange(2, 250)}" if rng.random() < 0.9 else None
    obj = pod(f"ns{rng.randrange(3)}/p{rng.randrange(100)}", ip=ip, ports=ports,
              node=rng.choice((None, "n1", "node-2")), app=rng.choice(("web", "db")))  # fmt: skip
    obj.pop("apiVersion")
    obj.pop("kind")  # as a list's items come
    return obj


def _full(obj: dict[str, Any]) -> tuple[str, object]:
    try:
        inventory = inventory_from_objects([_manifest("Pod", obj)])
    except ValidationError as exc:
        return "problem", str(exc)
    return "model", inventory.pods[0] if inventory.pods else None


@pytest.mark.parametrize("seed", range(60))
def test_pod_record_is_the_full_parse_or_leaves_the_object_to_it(seed: int) -> None:
    rng = random.Random(seed)
    obj = _random_pod(rng)
    mutations = rng.sample(_FINE, k=rng.randrange(0, 3))
    broken = rng.random() < 0.6
    if broken:
        mutations.append(rng.choice(_BREAKS))
    for _, mutate in mutations:
        mutate(obj)
    record = pod_record(copy.deepcopy(obj))
    outcome, model = _full(obj)
    if record is None:
        assert broken, f"a valid pod was left to the full parse: {obj}"
        return
    assert outcome == "model", (mutations, model)
    assert (None if record == GONE else record) == model


@pytest.mark.parametrize("name", [name for name, _ in _BREAKS])
def test_every_break_is_left_to_the_full_parse(name: str) -> None:
    obj = _random_pod(random.Random(1))
    dict(_BREAKS)[name](obj)
    assert pod_record(obj) is None
    assert _full(obj)[0] == "problem"
