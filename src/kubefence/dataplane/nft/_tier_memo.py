"""What tier planning keeps from one call to the next: ``TierMemo``.

Why this module exists: a running sandbox re-plans after every change, and re-matching every
ClusterNetworkPolicy's subjects and peers for one changed rule is most of the tier part's cost
(as ``_memo`` is for NetworkPolicy). ``plan_ruleset`` keeps one ``TierMemo`` on its
``PlanMemo``; the plan is the same with or without it.
"""

from __future__ import annotations

from collections.abc import Mapping

from kubefence.api import AdminRule, ClusterNetworkPolicy, Pod
from kubefence.dataplane.nft._entries import Entry
from kubefence.dataplane.nft._peers import Context
from kubefence.dataplane.nft._tier_peers import TierPeers
from kubefence.semantics import PolicyIndex, admin_selects

__all__ = ["TierMemo"]


class TierMemo:
    """What tier planning may reuse from the previous call (kept on the ``PlanMemo``): the
    peers' address ranges while the pod side (the ``Context``) and the node facts are the same,
    and each rule's entries (address-set key, ranges, origin, protocol, port) while the rule is
    equal. Only the previous call's rules are kept. Set ids are numbered again every call."""

    __slots__ = ("_context", "_entries", "_nodes", "_selected", "_used", "peers")

    def __init__(self) -> None:
        self._context: Context | None = None
        self._nodes: object = None
        self.peers: TierPeers | None = None
        self._entries: dict[tuple[object, ...], tuple[AdminRule, tuple[Entry, ...]]] = {}
        self._used: dict[tuple[object, ...], tuple[AdminRule, tuple[Entry, ...]]] = {}
        # per policy: which (namespace, pod labels) it selects, while the pod side is the same
        self._selected: dict[tuple[str, str], tuple[ClusterNetworkPolicy, dict[object, bool]]] = {}

    def begin(self, context: Context, index: PolicyIndex) -> TierPeers:
        nodes = (
            tuple(index.node_labels.items()),
            tuple(index.node_by_address.items()),
            tuple(index.node_by_ip.items()),
            tuple(index.service_by_ip),
        )
        if self.peers is None or context is not self._context or nodes != self._nodes:
            self._context, self._nodes = context, nodes
            self.peers = TierPeers(context, index)
            self._used = {}  # computed against the old pod side
            self._selected = {}
        self._entries, self._used = self._used, {}
        return self.peers

    def selects(self, policy: ClusterNetworkPolicy, pod: Pod, labels: Mapping[str, str]) -> bool:
        """``admin_selects`` (T04), remembered per policy and (namespace, pod labels)."""
        name = (policy.kind, policy.name)
        known = self._selected.get(name)
        if known is None or not (known[0] is policy or known[0] == policy):
            known = (policy, {})
            self._selected[name] = known
        key = (pod.namespace, pod.labels)
        found = known[1].get(key)
        if found is None:
            found = admin_selects(policy, pod, labels)
            known[1][key] = found
        return found

    def entries(self, key: tuple[object, ...], rule: AdminRule) -> tuple[Entry, ...] | None:
        known = self._entries.get(key)
        if known is None or not (known[0] is rule or known[0] == rule):
            return None
        self._used[key] = known
        return known[1]

    def keep(self, key: tuple[object, ...], rule: AdminRule, entries: tuple[Entry, ...]) -> None:
        self._used[key] = (rule, entries)
