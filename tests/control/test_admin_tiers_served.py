"""The admin tiers' kinds served by the API server: apply, get with the upstream CRDs' printer
columns, 422 with kubefence's field paths for invalid objects, discovery and RBAC (issue 15)."""

from __future__ import annotations

import json
from typing import Any

from tests.control.conftest import Cluster

GROUP = "policy.networking.k8s.io"
CNP = f"/apis/{GROUP}/v1alpha2/clusternetworkpolicies"
ANP = f"/apis/{GROUP}/v1alpha1/adminnetworkpolicies"
BANP = f"/apis/{GROUP}/v1alpha1/baselineadminnetworkpolicies"

TENANTS = """\
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: tenant-isolation}
spec:
  tier: Baseline
  priority: 10
  subject:
    namespaces: {matchExpressions: [{key: tenant, operator: Exists}]}
  ingress:
  - name: other-tenants
    action: Deny
    from:
    - namespaces: {matchExpressions: [{key: tenant, operator: Exists}]}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: always-dns}
spec:
  tier: Admin
  priority: 5
  subject:
    namespaces: {}
  egress:
  - name: dns
    action: Accept
    to:
    - pods:
        namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
        podSelector: {matchLabels: {k8s-app: kube-dns}}
    protocols:
    - udp: {destinationPort: {number: 53}}
"""


def _cnp(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha2",
        "kind": "ClusterNetworkPolicy",
        "metadata": {"name": name},
        "spec": {"tier": "Admin", "priority": 1, "subject": {"namespaces": {}}, **spec},
    }


def test_apply_and_get_cnp_shows_tier_priority_and_age(cluster: Cluster) -> None:
    k = cluster.kubectl
    applied = k("apply", "-f", "-", input=TENANTS).stdout
    assert "clusternetworkpolicy.policy.networking.k8s.io/tenant-isolation created" in applied
    assert "clusternetworkpolicy.policy.networking.k8s.io/always-dns created" in applied
    table = k("get", "cnp").stdout.splitlines()
    assert table[0].split() == ["NAME", "TIER", "PRIORITY", "AGE"]
    rows = {line.split()[0]: line.split()[1:3] for line in table[1:]}
    assert rows == {"always-dns": ["Admin", "5"], "tenant-isolation": ["Baseline", "10"]}
    again = k("apply", "-f", "-", input=TENANTS).stdout
    assert "tenant-isolation unchanged" in again
    stored = json.loads(k("get", "clusternetworkpolicy", "always-dns", "-o", "json").stdout)
    assert "namespace" not in stored["metadata"]  # cluster-scoped
    assert stored["spec"]["egress"][0]["protocols"] == [
        {"udp": {"destinationPort": {"number": 53}}}
    ]
    k("delete", "cnp", "always-dns", "tenant-isolation")
    assert k("get", "cnp", "-o", "name").stdout.strip() == ""


def test_invalid_cnp_is_422_with_field_causes_and_not_stored(cluster: Cluster) -> None:
    body = _cnp(
        "bad",
        priority=1001,
        egress=[
            {"action": "Allow", "to": [{"networks": ["198.18.0.0/33"]}]},
            {
                "action": "Deny",
                "to": [{"namespaces": {}}],
                "protocols": [{"tcp": {"destinationPort": {"range": {"start": 90, "end": 80}}}}],
            },
        ],
    )
    code, status = cluster.request("POST", CNP, body)
    assert code == 422, status
    assert status["kind"] == "Status"
    assert status["reason"] == "Invalid"
    fields = {cause["field"] for cause in status["details"]["causes"]}
    assert {
        "spec.priority",
        "spec.egress[0].action",
        "spec.egress[0].to[0].networks[0]",
        "spec.egress[1].protocols[0].tcp.destinationPort.range",
    } <= fields, fields
    assert cluster.request("GET", f"{CNP}/bad")[0] == 404
    # the same through kubectl: exit status, the kind and the field path on stderr
    refused = cluster.kubectl(
        "apply", "-f", "-", input=json.dumps(_cnp("bad2", tier="Middle")), check=False
    )
    assert refused.returncode != 0
    assert "spec.tier" in refused.stderr
    assert 'ClusterNetworkPolicy "bad2" is invalid' in refused.stderr
    assert cluster.request("GET", f"{CNP}/bad2")[0] == 404


def test_v1alpha1_kinds_served_with_their_columns_and_defaults(cluster: Cluster) -> None:
    anp = {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "AdminNetworkPolicy",
        "metadata": {"name": "old-admin"},
        "spec": {
            "priority": 3,
            "subject": {"namespaces": {}},
            "ingress": [
                {
                    "action": "Allow",
                    "from": [{"namespaces": {}}],
                    "ports": [{"portNumber": {"port": 80}}],
                }
            ],
        },
    }
    code, created = cluster.request("POST", ANP, anp)
    assert code == 201, created
    assert created["spec"]["ingress"][0]["ports"][0]["portNumber"]["protocol"] == "TCP"
    table = cluster.kubectl("get", "anp").stdout.splitlines()
    assert table[0].split() == ["NAME", "PRIORITY", "AGE"]
    assert table[1].split()[:2] == ["old-admin", "3"]
    banp = {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "BaselineAdminNetworkPolicy",
        "metadata": {"name": "not-default"},
        "spec": {"subject": {"namespaces": {}}},
    }
    code, status = cluster.request("POST", BANP, banp)
    assert code == 422
    assert any("default" in c["message"] for c in status["details"]["causes"]), status
    banp["metadata"]["name"] = "default"
    assert cluster.request("POST", BANP, banp)[0] == 201
    assert cluster.kubectl("get", "banp").stdout.splitlines()[0].split() == ["NAME", "AGE"]
    cluster.kubectl("delete", "anp", "old-admin")
    cluster.kubectl("delete", "banp", "default")


def test_discovery_lists_the_kinds_and_view_can_read_them(cluster: Cluster) -> None:
    k = cluster.kubectl
    resources = k("api-resources", "--api-group", GROUP).stdout
    for plural, short in (
        ("clusternetworkpolicies", "cnp"),
        ("adminnetworkpolicies", "anp"),
        ("baselineadminnetworkpolicies", "banp"),
    ):
        line = next(line for line in resources.splitlines() if line.startswith(plural))
        assert short in line.split()
        assert "false" in line.split()  # not namespaced
    k("create", "clusterrolebinding", "auditor-view", "--clusterrole=view", "--user=auditor")

    def can(*args: str) -> str:
        return k("auth", "can-i", *args, check=False).stdout.strip()

    assert can("list", "clusternetworkpolicies", "--as", "auditor") == "yes"
    assert can("watch", "adminnetworkpolicies", "--as", "auditor") == "yes"
    assert can("create", "clusternetworkpolicies", "--as", "auditor") == "no"
    assert can("delete", "cnp", "--as", "auditor") == "no"
    assert can("create", "clusternetworkpolicies") == "yes"  # the admin
    assert can("list", "cnp", "--as", "somebody") == "no"
    k("delete", "clusterrolebinding", "auditor-view")
