"""Lint check KF012: a rule whose every peer and port another rule already allows.

Why this module exists: subsumption between rules needs its own comparison of selectors
(syntactic), port ranges and rule targets, which no other check shares; ipBlocks are compared
exactly, as address intervals, with the ipBlock checks' ``block_covers``.
"""

from __future__ import annotations

from collections.abc import Iterator

from kubefence.api import LabelSelector
from kubefence.audit._findings import Finding
from kubefence.audit._lint._context import LintContext, rule_path_of
from kubefence.audit._lint._ipblock import block_covers
from kubefence.semantics import CompiledRule, Direction, PeerKind, PeerMatcher, PortMatcher

__all__ = ["redundant_rule"]


def _selector_covers(wide: LabelSelector | None, narrow: LabelSelector | None) -> bool:
    """Syntactic: every constraint of ``wide`` is also a constraint of ``narrow``."""
    if wide is None or wide.is_empty:
        return True
    if narrow is None:
        return False
    labels_ok = all(narrow.match_labels.get(k) == v for k, v in wide.match_labels.items())
    return labels_ok and set(wide.match_expressions) <= set(narrow.match_expressions)


def _peer_covers(wide: PeerMatcher, narrow: PeerMatcher) -> bool:
    if wide.kind is PeerKind.ANY:
        return True
    if narrow.kind is PeerKind.ANY or wide.kind is not narrow.kind:
        return False
    if wide.kind is PeerKind.IP_BLOCK:
        assert wide.ip_block is not None
        assert narrow.ip_block is not None
        return block_covers(wide.ip_block, narrow.ip_block)
    if wide.namespace is not None:
        scope_ok = narrow.namespace == wide.namespace
    elif narrow.namespace is not None:
        scope_ok = wide.namespace_selector is not None and wide.namespace_selector.is_empty
    else:
        scope_ok = _selector_covers(wide.namespace_selector, narrow.namespace_selector)
    return scope_ok and _selector_covers(wide.pod_selector, narrow.pod_selector)


def _port_covers(wide: PortMatcher, narrow: PortMatcher) -> bool:
    if wide.protocol is None:
        return True
    if narrow.protocol is not wide.protocol:
        return False
    if wide.name is None and wide.low is None:
        return True
    if wide.name is not None:
        return narrow.name == wide.name
    if narrow.low is None or narrow.high is None:
        return False
    assert wide.low is not None
    assert wide.high is not None
    return wide.low <= narrow.low and narrow.high <= wide.high


def _rule_covers(wide: CompiledRule, narrow: CompiledRule) -> bool:
    return all(any(_peer_covers(w, n) for w in wide.peers) for n in narrow.peers) and all(
        any(_port_covers(w, n) for w in wide.ports) for n in narrow.ports
    )


def redundant_rule(ctx: LintContext) -> Iterator[Finding]:
    """KF012: a rule whose peers and ports another rule (for at least the same pods) covers."""
    for policies in ctx.index.policies_by_namespace.values():
        for direction in (Direction.INGRESS, Direction.EGRESS):
            entries = [
                (order, c, rule)
                for order, c in enumerate(policies)
                for rule in c.rules(direction) or ()
            ]
            for order, compiled, rule in entries:
                for other_order, other, other_rule in entries:
                    if (other_order, other_rule.index) == (order, rule.index):
                        continue
                    if other is not compiled and not (
                        other.pod_selector.is_empty or other.pod_selector == compiled.pod_selector
                    ):
                        continue
                    if not _rule_covers(other_rule, rule):
                        continue
                    mutual = other.pod_selector == compiled.pod_selector and _rule_covers(
                        rule, other_rule
                    )
                    if mutual and (other_order, other_rule.index) > (order, rule.index):
                        continue  # identical rules: report only the later one
                    path = rule_path_of(direction, rule.index)
                    by = (
                        f"{rule_path_of(direction, other_rule.index)} of the same policy"
                        if other is compiled
                        else f"{rule_path_of(direction, other_rule.index)} of policy {other.name}"
                    )
                    where = other.source.origin
                    other_path = rule_path_of(direction, other_rule.index)
                    at = (
                        f" ({where.file}:{other.source.line_of(other_path)})"
                        if where is not None
                        else ""
                    )
                    yield ctx.finding(
                        "KF012",
                        f"{path} is covered by {by}{at}: every peer and port it allows is "
                        "already allowed",
                        policy=compiled.source,
                        path=path,
                    )
                    break
