"""ClusterNetworkPolicy, AdminNetworkPolicy and BaselineAdminNetworkPolicy read into one model.

Why this module exists: the invalid corpus pins what is refused (``cnp-*.yaml``); these tests pin
what a valid object becomes: tier, priority, subject, rules in order with actions, every peer and
port kind, v1alpha1 spellings mapped (``Allow`` = Accept, the kind is the tier), lines of rules,
cluster scope, typed lists, and that the inventory keeps them apart from NetworkPolicy.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from kubefence.api import (
    AdminAction,
    AdminPeerKind,
    AdminPort,
    Inventory,
    Labels,
    LabelSelector,
    Protocol,
    Tier,
)
from kubefence.errors import ValidationError
from kubefence.sources.files import load_paths
from kubefence.sources.objects import inventory_from_objects

CNP = """
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: tenants, namespace: ignored-for-cluster-scope}
spec:
  tier: Baseline
  priority: 7
  subject:
    pods:
      podSelector: {matchLabels: {app: web}}
  ingress:
  - name: first
    action: Pass
    from:
    - namespaces: {matchLabels: {team: a}}
    - pods: {namespaceSelector: {}, podSelector: {matchLabels: {role: x}}}
    protocols:
    - tcp: {destinationPort: {number: 80}}
    - udp: {destinationPort: {range: {start: 1000, end: 2000}}}
    - sctp: {destinationPort: {number: 9}}
    - destinationNamedPort: http
  egress:
  - action: Deny
    to:
    - networks: [198.18.0.7/15, "fd00::/8"]
    - nodes: {matchLabels: {role: infra}}
    - domainNames: ["*.example.org", example.com.]
"""


def _load(text: str) -> Inventory:
    return inventory_from_objects([d for d in yaml.safe_load_all(text) if d])


def test_cluster_network_policy_becomes_the_model() -> None:
    inventory = _load(CNP)
    assert inventory.policies == ()
    (policy,) = inventory.admin_policies
    assert (policy.name, policy.kind, policy.tier, policy.priority) == (
        "tenants",
        "ClusterNetworkPolicy",
        Tier.BASELINE,
        7,
    )
    assert policy.namespace_selector == LabelSelector()  # absent namespaceSelector: all
    assert policy.pod_selector == LabelSelector(match_labels=Labels({"app": "web"}))
    (ingress,) = policy.ingress
    assert (ingress.index, ingress.name, ingress.action) == (0, "first", AdminAction.PASS)
    assert [p.kind for p in ingress.peers] == [AdminPeerKind.NAMESPACES, AdminPeerKind.PODS]
    assert ingress.ports == (
        AdminPort(0, Protocol.TCP, 80, 80),
        AdminPort(1, Protocol.UDP, 1000, 2000),
        AdminPort(2, Protocol.SCTP, 9, 9),
        AdminPort(3, name="http"),
    )
    (egress,) = policy.egress
    assert egress.name is None
    assert egress.ports == ()  # no protocols: every port
    networks, nodes, domains = egress.peers
    assert networks.networks == (
        ipaddress.ip_network("198.18.0.0/15"),  # host bits masked, as CEL's isCIDR accepts them
        ipaddress.ip_network("fd00::/8"),
    )
    assert nodes.node_selector == LabelSelector(match_labels=Labels({"role": "infra"}))
    assert domains.domain_names == ("*.example.org", "example.com.")


def test_rules_and_peers_keep_their_lines(tmp_path: Path) -> None:
    manifest = tmp_path / "cnp.yaml"
    manifest.write_text(CNP, encoding="utf-8")
    (policy,) = load_paths([str(manifest)]).admin_policies
    assert policy.line_of("spec.ingress[0]") == 12
    assert policy.line_of("spec.egress[0].to[1]") == 26
    assert policy.origin is not None
    assert policy.origin.line == 2


def test_namespaces_subject_selects_every_pod_of_the_namespaces() -> None:
    text = CNP.replace(
        "    pods:\n      podSelector: {matchLabels: {app: web}}", "    namespaces: {}"
    )
    (policy,) = _load(text).admin_policies
    assert policy.pod_selector is None


V1ALPHA1 = """
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: ops}
spec:
  priority: 3
  subject: {namespaces: {}}
  ingress:
  - action: Allow
    from: [{namespaces: {}}]
    ports:
    - portNumber: {port: 80}
    - portRange: {protocol: UDP, start: 5, end: 6}
    - namedPort: https
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  egress:
  - {action: Deny, to: [{networks: [198.18.0.0/15]}]}
"""


def test_v1alpha1_kinds_map_to_the_tiers() -> None:
    anp, banp = sorted(_load(V1ALPHA1).admin_policies, key=lambda p: p.kind)
    assert (anp.kind, anp.tier, anp.priority) == ("AdminNetworkPolicy", Tier.ADMIN, 3)
    assert anp.ingress[0].action is AdminAction.ACCEPT  # Allow
    assert anp.ingress[0].ports == (
        AdminPort(0, Protocol.TCP, 80, 80),  # protocol defaults to TCP
        AdminPort(1, Protocol.UDP, 5, 6),
        AdminPort(2, name="https"),
    )
    assert (banp.kind, banp.tier, banp.priority) == (
        "BaselineAdminNetworkPolicy",
        Tier.BASELINE,
        None,
    )
    assert banp.order > anp.order  # no priority: last in its tier


def test_typed_list_of_cluster_network_policies() -> None:
    doc = yaml.safe_load(CNP)
    del doc["apiVersion"], doc["kind"]
    listed = {
        "apiVersion": "policy.networking.k8s.io/v1alpha2",
        "kind": "ClusterNetworkPolicyList",
        "items": [doc],
    }
    assert [p.name for p in inventory_from_objects([listed]).admin_policies] == ["tenants"]


def test_cluster_scoped_names_are_unique_per_kind() -> None:
    with pytest.raises(ValidationError, match="duplicate ClusterNetworkPolicy tenants"):
        _load(CNP + "---" + CNP)
    both = _load(
        CNP
        + "---"
        + CNP.replace("kind: ClusterNetworkPolicy", "kind: AdminNetworkPolicy")
        .replace("v1alpha2", "v1alpha1")
        .replace("  tier: Baseline\n", "")
        .replace("protocols:", "ports:")
        .replace("Pass", "Deny")
        .split("    - tcp:")[0]
    )
    assert len(both.admin_policies) == 2


def test_wrong_api_version_names_the_right_one() -> None:
    with pytest.raises(
        ValidationError, match=r"use apiVersion: policy\.networking\.k8s\.io/v1alpha2"
    ):
        _load(CNP.replace("v1alpha2", "v1alpha1"))


def test_every_problem_of_one_object_is_listed() -> None:
    text = CNP.replace("priority: 7", "priority: 2000").replace("action: Deny", "action: Drop")
    with pytest.raises(ValidationError) as caught:
        _load(text)
    paths = sorted(p.path for p in caught.value.problems)
    assert paths == ["spec.egress[0].action", "spec.priority"]
