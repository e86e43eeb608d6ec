"""Lists of objects: ``kind: List`` (what ``kubectl get -o yaml`` prints) and the typed lists the
API server returns (``PodList``, ``NetworkPolicyList``, ...), whose items carry no apiVersion and
kind: the item's kind is the list's without ``List``, its apiVersion the list's."""

from __future__ import annotations

import copy
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from kubefence.api import PolicyType, Protocol
from kubefence.errors import FieldError, ValidationError
from kubefence.sources.files import load_paths
from kubefence.sources.objects import inventory_from_objects

LISTS = Path(__file__).resolve().parents[2] / "corpus" / "lists"


def _problems(*objects: dict[str, Any]) -> list[FieldError]:
    with pytest.raises(ValidationError) as caught:
        inventory_from_objects(objects)
    return list(caught.value.problems)


def _pod(name: str, **extra: Any) -> dict[str, Any]:
    return {
        **extra,
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"containers": [{"name": name, "image": "nginx:1.27"}]},
    }


def test_api_server_lists_load_with_all_their_server_fields() -> None:
    """NamespaceList, PodList, ServiceList and NetworkPolicyList as the API returns them (JSON,
    resourceVersion, uid, managedFields, ownerReferences, status ...) load like manifests."""
    inventory = load_paths([str(LISTS)])
    [shop] = inventory.namespaces
    assert (shop.name, dict(shop.labels), shop.implicit) == (
        "shop",
        {"kubernetes.io/metadata.name": "shop", "team": "shop"},
        False,
    )
    assert [(p.key, dict(p.labels), p.ips, p.node) for p in inventory.pods] == [
        ("shop/client", {"app": "client"}, (ipaddress.ip_address("198.18.2.7"),), "node-2"),
        (
            "shop/web-7c5ddbdf54-x2x9q",
            {"app": "web", "pod-template-hash": "7c5ddbdf54"},
            (ipaddress.ip_address("198.18.1.5"), ipaddress.ip_address("fd00:1::5")),
            "node-1",
        ),
    ]
    web = inventory.pods[1]
    assert [(p.port, p.protocol, p.name) for p in web.ports] == [(8080, Protocol.TCP, "http")]
    assert (web.origin.file, web.origin.line) == (str(LISTS / "pods.json"), 8)
    [service] = inventory.services
    assert (service.name, service.ports[0].target_port) == ("web", "http")
    assert [(p.name, p.policy_types) for p in inventory.policies] == [
        ("default-deny-egress", (PolicyType.EGRESS,)),
        ("web-allow-client", (PolicyType.INGRESS,)),
    ]
    allow = inventory.policies[1]
    assert allow.lines["spec.ingress[0].ports[0]"] == 40
    assert inventory.notes == ("pod shop/report-29406720-kx7tq left out: phase Succeeded",)
    assert inventory.skipped == {}


def test_problem_inside_an_item_names_the_item_and_its_line(tmp_path: Path) -> None:
    """A problem in the second item of a JSON PodList is at that item's field, on its line."""
    text = (LISTS / "pods.json").read_text(encoding="utf-8")
    assert text.count('"image": "busybox:1.36"') == 1
    broken = text.replace('"image": "busybox:1.36"', '"image": 7')
    file = tmp_path / "pods.json"
    file.write_text(broken, encoding="utf-8")
    with pytest.raises(ValidationError) as caught:
        load_paths([str(file)])
    line = broken.splitlines().index('            "image": 7,') + 1
    assert [(p.line, p.object, p.path, p.message) for p in caught.value.problems] == [
        (line, "Pod shop/client", "spec.containers[0].image", "must be a string, not an integer")
    ]


def test_typed_list_in_memory_and_inside_a_list() -> None:
    """A typed list works as an in-memory object and nested in a ``kind: List``; an item that
    names the list's own kind and apiVersion is accepted."""
    pods = {
        "apiVersion": "v1",
        "kind": "PodList",
        "items": [_pod("a"), _pod("b", kind="Pod", apiVersion="v1")],
    }
    assert [p.key for p in inventory_from_objects([pods]).pods] == ["shop/a", "shop/b"]
    nested = {"apiVersion": "v1", "kind": "List", "items": [pods]}
    assert [p.key for p in inventory_from_objects([nested]).pods] == ["shop/a", "shop/b"]


def test_deployment_list_expands_its_workloads() -> None:
    """A DeploymentList's items are Deployments: their templates become pods."""
    deployment: dict[str, Any] = {
        "metadata": {"name": "web", "namespace": "shop", "generation": 3, "uid": "x"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate"},
            "revisionHistoryLimit": 10,
            "template": {
                "metadata": {"creationTimestamp": None, "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
        "status": {"replicas": 2, "readyReplicas": 2, "observedGeneration": 3},
    }
    listed = {"apiVersion": "apps/v1", "kind": "DeploymentList", "items": [deployment]}
    inventory = inventory_from_objects([listed])
    assert [(p.key, p.owner) for p in inventory.pods] == [
        ("shop/web-0", "Deployment/web"),
        ("shop/web-1", "Deployment/web"),
    ]


def test_item_disagreeing_with_its_list_is_a_problem() -> None:
    """An item naming another kind or apiVersion than its typed list is refused at its own
    field (``items[i].kind``, ``items[i].apiVersion``); the other items are still read."""
    pods = {
        "apiVersion": "v1",
        "kind": "PodList",
        "items": [
            _pod("a", kind="Service"),
            _pod("b", apiVersion="apps/v1"),
            _pod("c", kind=5),
            {**_pod("d"), "metadata": {"name": "Bad_Name", "namespace": "shop"}},
        ],
    }
    found = _problems(pods)
    assert [(p.object, p.path, p.message) for p in found] == [
        (
            "Pod shop/Bad_Name",
            "metadata.name",
            "invalid value 'Bad_Name': a lowercase RFC 1123 subdomain must consist of lower case "
            "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
            "character (e.g. 'example.com')",
        ),
        (
            "document 1",
            "items[0].kind",
            "invalid value 'Service': an item of a PodList must be a Pod (or name no kind)",
        ),
        (
            "document 1",
            "items[1].apiVersion",
            "invalid value 'apps/v1': an item of a PodList must have apiVersion v1 (or name none)",
        ),
        ("document 1", "items[2].kind", "must be a string, not an integer"),
    ]


def test_typed_list_needs_the_apiversion_of_its_items() -> None:
    """A NetworkPolicyList in ``v1`` is refused at ``apiVersion``, as a NetworkPolicy would be."""
    listed = {"apiVersion": "v1", "kind": "NetworkPolicyList", "items": []}
    [problem] = _problems(listed)
    assert (problem.path, problem.message) == (
        "apiVersion",
        "no kind 'NetworkPolicyList' in 'v1': use apiVersion: networking.k8s.io/v1",
    )


def test_unknown_typed_lists_are_skipped_and_counted() -> None:
    """A list of a kind kubefence does not read is skipped like that kind: its items are counted
    (the same count as the same objects in a ``kind: List``); without items, the list itself."""
    config = {"metadata": {"name": "settings", "namespace": "shop"}, "data": {"a": "b"}}
    typed = {"apiVersion": "v1", "kind": "ConfigMapList", "items": [config, config]}
    inventory = inventory_from_objects([typed, {"apiVersion": "v1", "kind": "FooList"}])
    assert inventory.skipped == {"ConfigMap": 2, "FooList": 1}
    generic = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [{"apiVersion": "v1", "kind": "ConfigMap", **config}] * 2,
    }
    assert inventory_from_objects([generic]).skipped == {"ConfigMap": 2}
    empty = {"apiVersion": "v1", "kind": "ConfigMapList", "items": []}
    assert inventory_from_objects([empty]).skipped == {}


def test_kind_list_items_still_need_their_own_kind() -> None:
    """``kind: List`` mixes kinds, so each item names its own (as before typed lists)."""
    generic = {"apiVersion": "v1", "kind": "List", "items": [_pod("a")]}
    assert sorted((p.object, p.path) for p in _problems(generic)) == [
        ("document 1, items[0]", "apiVersion"),
        ("document 1, items[0]", "kind"),
    ]


def test_typed_list_round_trips_through_json(tmp_path: Path) -> None:
    """The same PodList from a file and from memory gives the same pods (lines aside)."""
    raw = json.loads((LISTS / "pods.json").read_text(encoding="utf-8"))
    from_memory = inventory_from_objects([copy.deepcopy(raw)])
    from_file = load_paths([str(LISTS / "pods.json")])
    assert [(p.key, p.labels, p.ports, p.ips) for p in from_memory.pods] == [
        (p.key, p.labels, p.ports, p.ips) for p in from_file.pods
    ]
