"""Bad input gets a Status with the right code and field paths, nothing is stored, never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.control.conftest import Cluster

NETPOL = "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies"


def _policy(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name},
        "spec": {"podSelector": {}, **spec},
    }


def test_invalid_policy_is_422_with_kubefence_field_paths_and_not_stored(cluster: Cluster) -> None:
    body = _policy("bad", ingress=[{"ports": [{"port": 70000}]}])
    code, status = cluster.request("POST", NETPOL, body)
    assert code == 422
    assert status["kind"] == "Status"
    assert status["reason"] == "Invalid"
    fields = [cause["field"] for cause in status["details"]["causes"]]
    assert fields == ["spec.ingress[0].ports[0].port"]
    assert "between 1 and 65535" in status["details"]["causes"][0]["message"]
    assert cluster.request("GET", f"{NETPOL}/bad")[0] == 404


def test_unknown_fields_rejected_under_strict_and_dropped_otherwise(cluster: Cluster) -> None:
    body = _policy("strict", bogus=1)
    code, status = cluster.request("POST", f"{NETPOL}?fieldValidation=Strict", body)
    assert code == 422
    assert [c["field"] for c in status["details"]["causes"]] == ["spec.bogus"]
    code, _ = cluster.request("POST", f"{NETPOL}?fieldValidation=Ignore", body)
    assert code == 201


def test_invalid_names_and_namespaces(cluster: Cluster) -> None:
    code, status = cluster.request("POST", "/api/v1/namespaces", {"metadata": {"name": "Bad_Name"}})
    assert code == 422
    assert status["details"]["causes"][0]["field"] == "metadata.name"
    missing = "/api/v1/namespaces/nowhere/configmaps"
    code, status = cluster.request("POST", missing, {"metadata": {"name": "x"}})
    assert code == 404
    assert status["message"] == 'namespaces "nowhere" not found'


def test_too_large_body_is_413(cluster: Cluster) -> None:
    big = {"metadata": {"name": "big"}, "data": {"x": "a" * (3 * 1024 * 1024 + 10)}}
    code, status = cluster.request("POST", "/api/v1/namespaces/default/configmaps", big)
    assert code == 413
    assert status["kind"] == "Status"
    assert cluster.request("GET", "/api/v1/namespaces/default/configmaps/big")[0] == 404


@pytest.mark.parametrize(
    ("content_type", "raw"),
    [
        ("application/json", b'{"metadata": {"name": '),
        ("application/json", b"\xff\xfe"),
        ("application/yaml", b"a: [b"),
        ("application/vnd.kubernetes.protobuf", b"k8s\x00\x0a\xff"),
    ],
)
def test_malformed_bodies_are_400(cluster: Cluster, content_type: str, raw: bytes) -> None:
    code, status = cluster.request(
        "POST", "/api/v1/namespaces/default/configmaps", raw=raw, content_type=content_type
    )
    assert code == 400, status
    assert status["reason"] == "BadRequest"


@pytest.mark.parametrize(
    "body",
    [
        [],
        "text",
        {"metadata": []},
        {"metadata": {"name": 5}},
        {"metadata": {"name": "p", "labels": "x"}, "spec": "nope"},
        {"metadata": {"name": "p"}, "spec": {"containers": "x"}},
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "ports": [7]}]}},
        {"kind": "Service", "metadata": {"name": "p"}},
    ],
)
def test_odd_shapes_never_500(cluster: Cluster, body: Any) -> None:
    code, status = cluster.request("POST", "/api/v1/namespaces/default/pods", body)
    assert 400 <= code < 500, status
    assert status["kind"] == "Status"


def test_bad_patches_and_selectors(cluster: Cluster) -> None:
    cm = "/api/v1/namespaces/default/configmaps"
    assert cluster.request("POST", cm, {"metadata": {"name": "p"}})[0] == 201
    code, _ = cluster.request(
        "PATCH", f"{cm}/p", [{"op": "remove", "path": "/nothing"}],
        content_type="application/json-patch+json",
    )  # fmt: skip
    assert code == 422
    code, _ = cluster.request("PATCH", f"{cm}/p", {"a": 1}, content_type="text/plain")
    assert code == 415
    code, _ = cluster.request("GET", f"{cm}?labelSelector=" + "a%20in%20(b")
    assert code == 400


def test_anonymous_root_is_forbidden_and_bad_credentials_are_401(cluster: Cluster) -> None:
    code, status = cluster.request("GET", "/", client=None)
    assert code == 403
    assert status["message"] == 'forbidden: User "system:anonymous" cannot get path "/"'
    code, _ = cluster.request("GET", "/healthz", client=None)
    assert code == 200
    code, _ = cluster.request(
        "GET", "/api/v1/pods", client=None, headers={"Authorization": "Bearer not-a-token"}
    )
    assert code == 401


def test_audit_log_records_user_verb_resource_and_code(cluster: Cluster) -> None:
    cluster.request("GET", "/api/v1/namespaces/default/pods")
    lines = (cluster.info.directory / "audit.log").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert any(
        e["user"] == "kubefence:admin" and e["verb"] == "list" and e["resource"] == "pods"
        and e["code"] == 200
        for e in entries
    )  # fmt: skip


def test_policy_defaulting_matches_kubefence(cluster: Cluster) -> None:
    rules = [{"ports": [{"port": 80}]}, {"ports": [{"port": 443}]}]
    code, created = cluster.request("POST", NETPOL, _policy("two-rules", ingress=rules, egress=[]))
    assert code == 201, created
    assert created["spec"]["policyTypes"] == ["Ingress"]  # an empty egress list adds nothing
    assert [r["ports"][0]["protocol"] for r in created["spec"]["ingress"]] == ["TCP", "TCP"]
    code, created = cluster.request("POST", NETPOL, _policy("out", egress=[{}]))
    assert created["spec"]["policyTypes"] == ["Ingress", "Egress"]
