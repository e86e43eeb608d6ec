"""Lint findings on admin tiers, KF014-KF018, and KF009 with a Baseline default deny: each has
a case that reports it and a near miss that stays quiet."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from kubefence.audit import Finding, LintOptions, lint
from kubefence.sources.objects import inventory_from_objects


def ns(name: str, tenant: str | None = None) -> str:
    labels = f", labels: {{tenant: {tenant}}}" if tenant else ""
    return f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}{labels}}}\n"


def pod(namespace: str, name: str, ip: str, app: str = "web") -> str:
    return (
        "apiVersion: v1\nkind: Pod\n"
        f"metadata: {{name: {name}, namespace: {namespace}, labels: {{app: {app}}}}}\n"
        "spec: {containers: [{name: c, image: nginx}]}\n"
        f"status: {{podIP: {ip}}}\n"
    )


def cnp(name: str, tier: str, priority: int, body: str, subject: str = "namespaces: {}") -> str:
    return (
        "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\n"
        f"metadata: {{name: {name}}}\nspec:\n  tier: {tier}\n  priority: {priority}\n"
        f"  subject: {{{subject}}}\n{body}"
    )


def np_deny_ingress(namespace: str) -> str:
    return (
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        f"metadata: {{name: deny, namespace: {namespace}}}\n"
        "spec: {podSelector: {}, policyTypes: [Ingress]}\n"
    )


TENANT_SUBJECT = "namespaces: {matchExpressions: [{key: tenant, operator: Exists}]}"

TENANTS = [
    ns("red", "red"),
    ns("blue", "blue"),
    pod("red", "a", "198.18.1.10"),
    pod("red", "b", "198.18.1.11"),
    pod("blue", "a", "198.18.2.10"),
]

ISOLATE = """  ingress:
  - {name: same, action: Accept, from: [{namespaces: {matchLabels: {tenant: red}}}]}
  - name: others
    action: Deny
    from: [{namespaces: {matchExpressions: [{key: tenant, operator: Exists}]}}]
"""


def found(docs: Sequence[str], rule: str, **options: Any) -> list[Finding]:
    objects = [o for d in docs for o in yaml.safe_load_all(d)]
    inventory = inventory_from_objects(objects)
    return [f for f in lint(inventory, options=LintOptions(**options)) if f.rule == rule]


def test_kf014_equal_priorities_in_one_tier() -> None:
    body = "  ingress:\n  - {action: Deny, from: [{namespaces: {}}]}\n"
    docs = [cnp("b-second", "Admin", 5, body), cnp("a-first", "Admin", 5, body)]
    (f,) = found(docs, "KF014")
    assert f.object == "ClusterNetworkPolicy b-second"
    assert "a-first first (by name)" in f.message
    # Different priorities, or the same priority in different tiers: quiet.
    assert not found([cnp("b", "Admin", 5, body), cnp("a", "Admin", 6, body)], "KF014")
    assert not found([cnp("b", "Admin", 5, body), cnp("a", "Baseline", 5, body)], "KF014")
    # Subjects that never share a pod (one label key, two values): their order does not matter.
    red, blue = (
        "namespaces: {matchLabels: {tenant: red}}",
        "namespaces: {matchLabels: {tenant: blue}}",
    )
    assert not found([cnp("b", "Admin", 5, body, red), cnp("a", "Admin", 5, body, blue)], "KF014")
    assert found([cnp("b", "Admin", 5, body, red), cnp("a", "Admin", 5, body)], "KF014")


def test_kf015_rule_behind_a_broader_one() -> None:
    body = """  ingress:
  - {name: all-from-red, action: Deny, from: [{namespaces: {matchLabels: {tenant: red}}}]}
  - name: web-80
    action: Accept
    from:
    - pods:
        namespaceSelector: {matchLabels: {tenant: red}}
        podSelector: {matchLabels: {app: web}}
    protocols: [{tcp: {destinationPort: {number: 80}}}]
  - {name: blue, action: Accept, from: [{namespaces: {matchLabels: {tenant: blue}}}]}
"""
    (f,) = found([cnp("p", "Admin", 1, body)], "KF015")
    assert f.path == "spec.ingress[1]"
    assert "p spec.ingress[0] (all-from-red) (Deny)" in f.message
    # A later policy with a narrower subject is shadowed too; one with a broader one is not.
    later = (
        "  ingress:\n  - action: Accept\n    from: [{namespaces: {matchLabels: {tenant: red}}}]\n"
        "    protocols: [{tcp: {destinationPort: {range: {start: 80, end: 90}}}}]\n"
    )
    narrow = "namespaces: {matchLabels: {tenant: blue}}"
    first = cnp("first", "Admin", 1, body, subject=narrow)
    assert [x.object for x in found([first, cnp("q", "Admin", 2, later)], "KF015")] == [
        "ClusterNetworkPolicy first"
    ]
    hits = found([cnp("first", "Admin", 1, body), cnp("q", "Admin", 2, later, narrow)], "KF015")
    assert sorted(str(x.object) for x in hits) == [
        "ClusterNetworkPolicy first",
        "ClusterNetworkPolicy q",
    ]
    # A narrower earlier port does not shadow a broader later one.
    ports = """  egress:
  - action: Deny
    to: [{networks: [198.18.0.0/16]}]
    protocols: [{tcp: {destinationPort: {number: 80}}}]
  - {action: Accept, to: [{networks: [198.18.1.0/24]}]}
  - action: Accept
    to: [{networks: [198.18.1.0/24]}]
    protocols: [{tcp: {destinationPort: {number: 80}}}]
"""
    (g,) = found([cnp("p", "Baseline", 1, ports)], "KF015")
    assert g.path == "spec.egress[2]"


def test_kf016_baseline_deny_every_tenant_overrides() -> None:
    policy = cnp(
        "iso",
        "Baseline",
        1,
        ISOLATE,
        TENANT_SUBJECT,
    )
    (f,) = found([*TENANTS, policy, np_deny_ingress("red"), np_deny_ingress("blue")], "KF016")
    assert f.path == "spec.ingress[1]"
    assert "3 pod(s)" in f.message
    # One tenant without its own NetworkPolicy: the Baseline still applies there.
    assert not found([*TENANTS, policy, np_deny_ingress("red")], "KF016")


def test_kf017_admin_accept_opens_cross_tenant_paths() -> None:
    iso = cnp(
        "iso",
        "Baseline",
        1,
        ISOLATE,
        TENANT_SUBJECT,
    )
    open_red = (
        "  ingress:\n  - name: from-blue\n    action: Accept\n"
        "    from: [{namespaces: {matchLabels: {tenant: blue}}}]\n"
    )
    admin = cnp("opener", "Admin", 1, open_red, "namespaces: {matchLabels: {tenant: red}}")
    (f,) = found([*TENANTS, iso, admin], "KF017", tenant_label="tenant")
    assert f.object == "ClusterNetworkPolicy opener"
    assert "blue -> red" in f.message
    # Without the Baseline isolation the path is open anyway: the Accept opens nothing.
    assert not found([*TENANTS, admin], "KF017", tenant_label="tenant")
    # Within one tenant it crosses nothing.
    same = cnp(
        "opener",
        "Admin",
        1,
        open_red.replace("blue", "red"),
        "namespaces: {matchLabels: {tenant: red}}",
    )
    assert not found([*TENANTS, iso, same], "KF017", tenant_label="tenant")


def test_kf018_pass_with_nothing_after_it() -> None:
    body = "  ingress:\n  - {name: to-tenants, action: Pass, from: [{namespaces: {}}]}\n"
    admin = cnp("pass", "Admin", 1, body)
    (f,) = found([*TENANTS, admin], "KF018")
    assert f.path == "spec.ingress[0]"
    assert "3 pod(s)" in f.message
    # A NetworkPolicy in each namespace decides after the Pass: quiet.
    assert not found([*TENANTS, admin, np_deny_ingress("red"), np_deny_ingress("blue")], "KF018")
    # So does a Baseline rule.
    assert not found([*TENANTS, admin, cnp("b", "Baseline", 1, ISOLATE)], "KF018")
    # A Baseline Pass has only the default after it, always.
    (g,) = found([cnp("b", "Baseline", 1, body)], "KF018")
    assert "Baseline tier" in g.message
    # Without pods: only when the input has neither NetworkPolicy nor Baseline rules.
    assert found([admin], "KF018")
    assert not found([admin, np_deny_ingress("red")], "KF018")


def test_kf009_quiet_where_a_baseline_policy_denies_by_default() -> None:
    iso = cnp(
        "iso",
        "Baseline",
        1,
        ISOLATE,
        TENANT_SUBJECT,
    )
    assert {f.namespace for f in found(TENANTS, "KF009")} == {"red", "blue"}
    assert not found([*TENANTS, iso], "KF009")
    assert {f.namespace for f in found([*TENANTS, iso], "KF010")} == {"red", "blue"}
    # A Baseline policy of only Accept rules isolates nothing.
    accept = cnp(
        "acc", "Baseline", 1, "  ingress:\n  - {action: Accept, from: [{namespaces: {}}]}\n"
    )
    assert {f.namespace for f in found([*TENANTS, accept], "KF009")} == {"red", "blue"}
