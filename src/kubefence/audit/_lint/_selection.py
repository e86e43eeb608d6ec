"""Lint checks comparing selectors with the pods in the input: KF002 (a policy's podSelector
selects no pod) and KF003 (a peer matches no namespace or no pod).

Why this module exists: a selector with a typo is valid and silently does nothing; these checks
run only when the input contains pods, since a repository of policies alone says nothing about
which pods exist.
"""

from __future__ import annotations

from collections.abc import Iterator

from kubefence.audit._common import describe_selector
from kubefence.audit._findings import Finding
from kubefence.audit._lint._context import LintContext, directions, peer_path
from kubefence.semantics import PeerKind

__all__ = ["peer_matches_nothing", "policy_selects_no_pod"]


def policy_selects_no_pod(ctx: LintContext) -> Iterator[Finding]:
    """KF002: spec.podSelector matches no pod of the namespace."""
    if not ctx.has_pods:
        return
    for compiled in ctx.compiled:
        if ctx.selected_pods(compiled):
            continue
        count = len(ctx.inventory.pods_by_namespace.get(compiled.namespace, ()))
        yield ctx.finding(
            "KF002",
            f"spec.podSelector {describe_selector(compiled.pod_selector)} selects none of the "
            f"{count} pod{'s' if count != 1 else ''} of namespace {compiled.namespace}",
            policy=compiled.source,
            path="spec.podSelector",
        )


def peer_matches_nothing(ctx: LintContext) -> Iterator[Finding]:
    """KF003: a pod/namespace peer that matches no namespace or no pod."""
    if not ctx.has_pods:
        return
    for compiled in ctx.compiled:
        for direction, rules in directions(compiled):
            for rule in rules:
                for peer in rule.peers:
                    if peer.kind is not PeerKind.PODS or ctx.peer_pods(peer):
                        continue
                    path = peer_path(direction, rule.index, peer.index)
                    if peer.namespace_selector is not None and not ctx.selected_namespaces(
                        peer.namespace_selector
                    ):
                        what = (
                            f"namespaceSelector {describe_selector(peer.namespace_selector)} "
                            f"matches none of the {len(ctx.namespaces)} namespaces"
                        )
                    else:
                        scope = (
                            f"namespace {peer.namespace}"
                            if peer.namespace is not None
                            else "the selected namespaces"
                        )
                        what = (
                            f"podSelector {describe_selector(peer.pod_selector)} matches no "
                            f"pod in {scope}"
                        )
                    yield ctx.finding(
                        "KF003",
                        f"{path}: {what}; the peer allows nothing",
                        policy=compiled.source,
                        path=path,
                    )
