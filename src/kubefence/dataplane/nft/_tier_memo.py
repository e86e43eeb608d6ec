"""What tier planning keeps from one call to the next: ``TierMemo``.

Why this module exists: a running sandbox re-plans after every change, and re-matching every
ClusterNetworkPolicy's subjects and peers for one changed rule is most of the tier part's cost
(as ``_memo`` is for NetworkPolicy). ``plan_ruleset`` keeps one ``TierMemo`` on its
``PlanMemo``; the plan is the same with or without it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kubefence.api import AdminRule, ClusterNetworkPolicy, LabelSelector
from kubefence.dataplane.nft._entries import Entry
from kubefence.dataplane.nft._intervals import Box
from kubefence.dataplane.nft._peers import Context
from kubefence.dataplane.nft._tier_peers import NodeFacts, TierPeers

__all__ = ["Subject", "TierMemo"]

Subject = tuple[LabelSelector, LabelSelector | None]
Verdicts = tuple[tuple[Box, str], ...]


class TierMemo:
    """What tier planning may reuse from the previous call (kept on the ``PlanMemo``): the
    peers' address ranges while the pod side (the ``Context``) and the node facts are the same,
    and each rule's entries (address-set key, ranges, origin, protocol, port) while the rule is
    equal; and which (namespace, pod labels) each subject selects. Only the previous call's
    rules and subjects are kept. Set ids are numbered again every call."""

    __slots__ = (
        "_context",
        "_entries",
        "_nodes",
        "_selected",
        "_selected_now",
        "_used",
        "_verdicts",
        "_verdicts_now",
        "peers",
    )

    def __init__(self) -> None:
        self._context: Context | None = None
        self._nodes: object = None
        self.peers: TierPeers | None = None
        self._entries: dict[tuple[object, ...], tuple[AdminRule, tuple[Entry, ...]]] = {}
        self._used: dict[tuple[object, ...], tuple[AdminRule, tuple[Entry, ...]]] = {}
        # per subject (its two selectors, compared by value: a policy's other fields do not
        # matter, so an edited rule keeps its policy's selection): (namespace, pod labels) ->
        # selected, while the pod side is the same
        self._selected: dict[Subject, dict[object, bool]] = {}
        self._selected_now: dict[Subject, dict[object, bool]] = {}
        # class verdict maps by their steps' (label, id of elements), with the steps' element
        # tuples kept alive so that no id is reused while its entry lives
        self._verdicts: dict[tuple[object, ...], tuple[object, Verdicts]] = {}
        self._verdicts_now: dict[tuple[object, ...], tuple[object, Verdicts]] = {}

    def begin(self, context: Context, facts: NodeFacts) -> TierPeers:
        nodes = facts.key
        if self.peers is None or context is not self._context or nodes != self._nodes:
            self._context, self._nodes = context, nodes
            self.peers = TierPeers(context, facts)
            self._used = {}  # computed against the old pod side
            self._selected_now = {}
        self._entries, self._used = self._used, {}
        self._selected, self._selected_now = self._selected_now, {}
        return self.peers

    def begin_verdicts(self) -> None:
        """Start a call's verdict maps: keep the previous call's, forget older ones."""
        self._verdicts, self._verdicts_now = self._verdicts_now, {}

    def verdicts(
        self,
        labelled: Sequence[tuple[str | None, tuple[Box, ...]]],
        compute: Callable[[Sequence[tuple[str | None, tuple[Box, ...]]]], Verdicts],
    ) -> Verdicts:
        """``compute(labelled)``, a pure function, remembered for two calls by the labels and
        the identity of the element tuples."""
        key = tuple((label, id(elements)) for label, elements in labelled)
        known = self._verdicts_now.get(key) or self._verdicts.get(key)
        if known is None:
            known = (tuple(elements for _, elements in labelled), compute(labelled))
        self._verdicts_now[key] = known
        return known[1]

    def selection(self, policy: ClusterNetworkPolicy) -> dict[object, bool]:
        """The remembered answers of ``admin_selects`` (T04) for ``policy``'s subject, keyed
        by (namespace, pod labels) and filled by the caller; one look-up per policy and call,
        not per pod."""
        subject = (policy.namespace_selector, policy.pod_selector)
        found = self._selected_now.get(subject)
        if found is None:
            found = self._selected.get(subject)
            if found is None:
                found = {}
            self._selected_now[subject] = found
        return found

    def entries(self, key: tuple[object, ...], rule: AdminRule) -> tuple[Entry, ...] | None:
        known = self._entries.get(key)
        if known is None or not (known[0] is rule or known[0] == rule):
            return None
        self._used[key] = known
        return known[1]

    def keep(self, key: tuple[object, ...], rule: AdminRule, entries: tuple[Entry, ...]) -> None:
        self._used[key] = (rule, entries)
