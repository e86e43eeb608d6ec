"""KF017 at a bounded cost (``audit/_lint/_tiers_cross.py``): the pruned, restricted check finds
exactly what comparing the full reachability with and without every Admin Accept rule finds,
and past ``KF017_LIMIT`` computations it says which rules it did not check."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubefence.api import AdminAction, Inventory, Tier
from kubefence.audit import LintOptions
from kubefence.audit._lint import _tiers_cross
from kubefence.audit._lint._context import LintContext
from kubefence.semantics import Direction, index_for
from kubefence.sources.objects import inventory_from_objects


def _context(inventory: Inventory) -> LintContext:
    return LintContext(
        inventory=inventory,
        options=LintOptions(),
        index=index_for(inventory),
        namespaces=tuple(sorted({p.namespace for p in inventory.pods})),
    )


def _brute_force(context: LintContext) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """Every Admin Accept rule, the full reachability without it (what KF017 did before)."""
    inventory = context.inventory
    now = _tiers_cross._cross(inventory, context)
    found = set()
    for policy in inventory.admin_policies:
        if policy.tier is not Tier.ADMIN:
            continue
        for direction in (Direction.INGRESS, Direction.EGRESS):
            rules = policy.ingress if direction is Direction.INGRESS else policy.egress
            for rule in rules:
                if rule.action is not AdminAction.ACCEPT:
                    continue
                without = _tiers_cross._without(inventory, policy, direction, rule)
                opened = tuple(sorted(now - _tiers_cross._cross(without, context)))
                if opened:
                    found.add((policy.name, f"spec.{direction.value}[{rule.index}]", opened))
    return found


def _pairs(message: str) -> int:
    return int(message.split(" opens ")[1].split(" ")[0])


_NAMESPACES = ("a", "b", "c")


@st.composite
def _peer(draw: st.DrawFn) -> dict[str, Any]:
    namespaces = draw(
        st.sampled_from(
            (
                {},
                {
                    "matchLabels": {
                        "kubernetes.io/metadata.name": draw(st.sampled_from(_NAMESPACES))
                    }
                },
                {"matchLabels": {"tenant": draw(st.sampled_from(("x", "y")))}},
            )
        )
    )
    if draw(st.booleans()):
        return {"namespaces": namespaces}
    app = draw(st.sampled_from(("web", "db")))
    return {"pods": {"namespaceSelector": namespaces, "podSelector": {"matchLabels": {"app": app}}}}


@st.composite
def _rules(draw: st.DrawFn, *, field: str) -> list[dict[str, Any]]:
    return [
        {
            "action": draw(st.sampled_from(("Accept", "Accept", "Deny", "Pass"))),
            field: draw(st.lists(_peer(), min_size=1, max_size=2)),
        }
        for _ in range(draw(st.integers(0, 2)))
    ]


@st.composite
def _tenant_clusters(draw: st.DrawFn) -> Inventory:
    """Three namespaces of two tenants with two pods each, 1-3 random Admin policies (mostly
    Accept rules), a Baseline policy that closes everything else (so the Accepts decide), and
    maybe a NetworkPolicy isolating one namespace's ingress."""
    docs: list[dict[str, Any]] = []
    for n, name in enumerate(_NAMESPACES):
        tenant = draw(st.sampled_from(("x", "y")))
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": {"tenant": tenant}},
            }
        )
        for m, app in enumerate(("web", "db")):
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": app, "namespace": name, "labels": {"app": app}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                    "status": {"podIP": f"198.18.{n}.{10 + m}"},
                }
            )
    for i in range(draw(st.integers(1, 3))):
        subject = draw(
            st.sampled_from(
                (
                    {},
                    {"matchLabels": {"tenant": "x"}},
                    {"matchLabels": {"kubernetes.io/metadata.name": "a"}},
                )
            )
        )
        spec: dict[str, Any] = {
            "tier": "Admin",
            "priority": draw(st.sampled_from((1, 2, 2))),
            "subject": {"namespaces": subject},
        }
        spec["ingress"] = draw(_rules(field="from"))
        spec["egress"] = draw(_rules(field="to"))
        docs.append(
            {
                "apiVersion": "policy.networking.k8s.io/v1alpha2",
                "kind": "ClusterNetworkPolicy",
                "metadata": {"name": f"cnp{i}"},
                "spec": spec,
            }
        )
    everyone = [{"namespaces": {}}]
    docs.append(
        {
            "apiVersion": "policy.networking.k8s.io/v1alpha2",
            "kind": "ClusterNetworkPolicy",
            "metadata": {"name": "close-all"},
            "spec": {
                "tier": "Baseline",
                "priority": 1000,
                "subject": {"namespaces": {}},
                "ingress": [{"action": "Deny", "from": everyone}],
                "egress": [{"action": "Deny", "to": everyone}],
            },
        }
    )
    if draw(st.booleans()):
        docs.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": "deny", "namespace": draw(st.sampled_from(_NAMESPACES))},
                "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
            }
        )
    return inventory_from_objects(docs)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_tenant_clusters(), st.booleans())
def test_kf017_finds_what_the_full_comparison_finds(inventory: Inventory, by_tenant: bool) -> None:
    context = _context(inventory)
    if by_tenant:
        context = dataclasses.replace(context, options=LintOptions(tenant_label="tenant"))
    want = _brute_force(context)
    got = {
        (f.object.split(" ", 1)[1], f.path, _pairs(f.message))
        for f in _tiers_cross.admin_accept_cross_tenant(context)
    }
    assert got == {(name, path, len(opened)) for name, path, opened in want}


def test_the_property_cases_do_find_paths() -> None:
    """The strategy is not vacuous: some of its clusters have Accepts that open paths."""
    found = []

    @settings(max_examples=40, deadline=None, database=None, derandomize=True)
    @given(_tenant_clusters())
    def collect(inventory: Inventory) -> None:
        found.append(bool(_brute_force(_context(inventory))))

    collect()
    assert sum(found) >= 5


def test_past_the_limit_kf017_names_the_rules_it_did_not_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import yaml
    from tests.unit.audit.test_audit_tiers import ISOLATE, TENANT_SUBJECT, TENANTS, cnp

    from kubefence.sources.objects import inventory_from_objects

    opener = (
        "  ingress:\n  - name: from-blue\n    action: Accept\n"
        "    from: [{namespaces: {matchLabels: {tenant: blue}}}]\n"
    )
    red = "namespaces: {matchLabels: {tenant: red}}"
    docs = [*TENANTS, cnp("iso", "Baseline", 1, ISOLATE, TENANT_SUBJECT)]
    docs += [cnp(f"opener-{i}", "Admin", 1 + i, opener, red) for i in range(3)]
    inventory = inventory_from_objects([yaml.safe_load(d) for d in docs])
    context = dataclasses.replace(_context(inventory), options=LintOptions(tenant_label="tenant"))
    monkeypatch.setattr(_tiers_cross, "KF017_LIMIT", 1)
    findings = list(_tiers_cross.admin_accept_cross_tenant(context))
    # opener-0 is checked (the limit is 1) and opens nothing alone: the others still open
    # blue -> red; the other two are not checked, and one finding says so.
    (note,) = findings
    assert note.object == "ClusterNetworkPolicy opener-1"
    assert note.message.startswith("not checked: 2 Admin Accept rule(s)")
    assert "opener-1 spec.ingress[0] (from-blue), opener-2 spec.ingress[0] (from-blue)" in (
        note.message
    )
    monkeypatch.setattr(_tiers_cross, "KF017_LIMIT", 32)
    assert list(_tiers_cross.admin_accept_cross_tenant(context)) == []
