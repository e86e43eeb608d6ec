"""The registry of lint checks and ``lint``, which runs them all.

Why this module exists: a validated manifest can still be wrong in ways the API server accepts
(the AND/OR list-item trap, selectors matching nothing, default-deny egress without DNS, ipBlocks
aimed at ClusterIPs). The checks live one family per module; this is the one list of them, and
the one place that builds their shared context. Each check reads the inventory and the compiled
algebra only, so it agrees with the evaluators on what every field means, and reports data
(``Finding``), never text formatted for a terminal.

Checks that compare selectors with pods (KF002, KF003, KF004 for ingress, KF007, KF016, KF017)
run only when the input contains pods: a repository of policies alone says nothing about which
pods exist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from kubefence.api import Inventory
from kubefence.audit._findings import Finding
from kubefence.audit._lint._context import LintContext, LintOptions
from kubefence.audit._lint._defaults import allow_all_rule, no_default_deny
from kubefence.audit._lint._dns import egress_without_dns
from kubefence.audit._lint._duplicates import duplicate_policy_name
from kubefence.audit._lint._ipblock import ipblock_covers_pods, ipblock_targets_service
from kubefence.audit._lint._peers import and_or_near_miss, spoofable_namespace_selector
from kubefence.audit._lint._ports import named_port_undeclared
from kubefence.audit._lint._redundant import redundant_rule
from kubefence.audit._lint._selection import peer_matches_nothing, policy_selects_no_pod
from kubefence.audit._lint._tiers import (
    baseline_deny_overridden,
    pass_to_nothing,
    priority_tie,
    shadowed_tier_rule,
)
from kubefence.audit._lint._tiers_cross import admin_accept_cross_tenant
from kubefence.semantics import index_for

__all__ = ["CHECKS", "lint"]

CHECKS: tuple[Callable[[LintContext], Iterator[Finding]], ...] = (
    and_or_near_miss,  # KF001
    policy_selects_no_pod,  # KF002
    peer_matches_nothing,  # KF003
    named_port_undeclared,  # KF004
    egress_without_dns,  # KF005
    ipblock_targets_service,  # KF006
    ipblock_covers_pods,  # KF007
    spoofable_namespace_selector,  # KF008
    no_default_deny,  # KF009, KF010
    allow_all_rule,  # KF011
    redundant_rule,  # KF012
    duplicate_policy_name,  # KF013
    priority_tie,  # KF014
    shadowed_tier_rule,  # KF015
    baseline_deny_overridden,  # KF016
    admin_accept_cross_tenant,  # KF017
    pass_to_nothing,  # KF018
)


def lint(inventory: Inventory, *, options: LintOptions | None = None) -> tuple[Finding, ...]:
    """Every finding for ``inventory``, sorted by file, line, object, path and rule id."""
    opts = options or LintOptions()
    known = {n.name for n in inventory.namespaces} | {p.namespace for p in inventory.pods}
    known |= {p.namespace for p in inventory.policies}
    ctx = LintContext(
        inventory=inventory,
        options=opts,
        index=index_for(inventory),
        namespaces=tuple(sorted(known)),
    )
    found = {f for check in CHECKS for f in check(ctx)}
    return tuple(sorted(found, key=Finding.sort_key))
