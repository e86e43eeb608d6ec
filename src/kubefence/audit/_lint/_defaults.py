"""Lint checks on how broad a namespace's policies are: KF009/KF010 (no default deny per
direction; a Baseline ClusterNetworkPolicy with a Deny rule selecting the whole namespace counts
as its default deny) and KF011 (a rule that allows every peer on every port, S09).

Why this module exists: these findings are about what a namespace leaves open rather than about
a single field, and they read the isolation count the report's coverage columns use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from kubefence.audit._common import describe_selector, isolated_count
from kubefence.audit._findings import Finding
from kubefence.audit._lint._context import LintContext, directions, list_field, rule_path_of
from kubefence.audit._lint._tiers import baseline_isolates
from kubefence.semantics import Direction, PeerKind

__all__ = ["allow_all_rule", "no_default_deny"]


def no_default_deny(ctx: LintContext) -> Iterator[Finding]:
    """KF009/KF010: no ``podSelector: {}`` policy isolating the namespace (per direction)."""
    inv = ctx.inventory
    for name in ctx.namespaces:
        namespace = inv.namespace_by_name.get(name)
        declared = namespace is not None and not namespace.implicit
        pods = inv.pods_by_namespace.get(name, ())
        if not declared and not pods:
            continue  # only referenced by a policy: not ours to judge
        policies = ctx.index.policies_in(name)
        for direction, rule_id in ((Direction.INGRESS, "KF009"), (Direction.EGRESS, "KF010")):
            if any(c.pod_selector.is_empty and c.rules(direction) is not None for c in policies):
                continue
            if baseline_isolates(inv, name, pods, direction) is not None:
                continue  # the platform's Baseline tier denies by default here
            isolated = isolated_count(pods, policies, direction, settings=ctx.options.settings)
            coverage = f"; {isolated} of {len(pods)} pod(s) are isolated by narrower policies"
            found = ctx.finding(
                rule_id,
                f"namespace {name} has no default-deny {direction.value} policy"
                f"{coverage if pods else ''}",
                namespace=namespace if declared else None,
                namespace_name=name,
            )
            anchor = policies[0].source.origin if policies else None
            if found.file is None and anchor is not None:
                # Not declared in the input: point at a policy of the namespace instead.
                found = dataclasses.replace(found, file=anchor.file, line=anchor.line)
            yield found


def allow_all_rule(ctx: LintContext) -> Iterator[Finding]:
    """KF011: a rule with every peer and every port."""
    for compiled in ctx.compiled:
        for direction, rules in directions(compiled):
            for rule in rules:
                every_peer = any(p.kind is PeerKind.ANY for p in rule.peers)
                every_port = any(m.protocol is None for m in rule.ports)
                if every_peer and every_port:
                    path = rule_path_of(direction, rule.index)
                    yield ctx.finding(
                        "KF011",
                        f"{path} has no {list_field(direction)} and no ports: it allows every "
                        f"{direction.value} connection of the pods "
                        f"{describe_selector(compiled.pod_selector)} it selects",
                        policy=compiled.source,
                        path=path,
                    )
