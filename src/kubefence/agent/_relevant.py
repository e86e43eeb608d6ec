"""Which pods can change a node's table: its own, and those its policies' peers can match.

Why this module exists: the planner matches every peer against every pod it is given, and a
node's table reads only some of them: its own pods (dispatched), the pods of namespaces a pod
peer of its policies can select (S11-S14: a peer's namespace part is decided per namespace),
and, where an egress rule names a port, the pods whose addresses the rule's ipBlocks cover or,
for a rule without peers, every pod (S21: the name is resolved at each destination). Handing
the planner only those keeps a change to any other pod from touching this node at all, and
makes each plan cheaper. The answer is a superset of what the table reads, never less; when
the settings make pods matter elsewhere (ipBlocks that exclude pods, selectable hostNetwork
pods) every pod is kept. ``tests/unit/agent/test_relevant.py`` holds the plans to the plans
over every pod on random clusters.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

from kubefence.api import IPNetwork, LabelSelector, NetworkPolicy, Pod, selector_matches
from kubefence.semantics import Settings

__all__ = ["Relevance", "relevant_pods"]


class Relevance:
    """The test ``relevant_pods`` applies to each pod, built once per (policies, namespace
    labels, settings) so that the agent's store can decide for one changed pod alone."""

    __slots__ = ("_blocks", "_labels", "_namespaces", "_selectors", "_wanted", "everything")

    def __init__(
        self,
        policies: Sequence[NetworkPolicy],
        *,
        namespace_labels: Callable[[str], Mapping[str, str]],
        settings: Settings,
    ) -> None:
        self._labels = namespace_labels
        self._namespaces: set[str] = set()
        self._selectors: set[LabelSelector] = set()
        self._blocks: list[IPNetwork] = []
        self._wanted: dict[str, bool] = {}
        # True: every pod is kept (see the module's docstring).
        self.everything = not settings.ipblock_matches_pods or settings.host_network_selectable
        if not self.everything:
            self.everything = self._collect(policies)

    def _collect(self, policies: Sequence[NetworkPolicy]) -> bool:
        """Gather the peers' namespaces, selectors and blocks; True when every pod counts."""
        for policy in policies:
            for egress, rules in ((False, policy.ingress), (True, policy.egress)):
                for rule in rules:
                    named = egress and any(isinstance(p.port, str) for p in rule.ports)
                    if not rule.peers:
                        if named:
                            return True  # the name resolves at every destination
                        continue
                    for peer in rule.peers:
                        if peer.ip_block is not None:
                            if named:
                                self._blocks.append(peer.ip_block.cidr)  # a superset
                        elif peer.namespace_selector is None:
                            self._namespaces.add(policy.namespace)
                        else:
                            self._selectors.add(peer.namespace_selector)
        return False

    def signature(self) -> object:
        """Equal for two ``Relevance`` of the same namespace labels that keep the same pods."""
        if self.everything:
            return True
        return (
            frozenset(self._namespaces),
            frozenset(self._selectors),
            frozenset((b.version, str(b)) for b in self._blocks),
        )

    def _namespace_wanted(self, name: str) -> bool:
        found = self._wanted.get(name)
        if found is None:
            labels = self._labels(name)
            found = name in self._namespaces or any(
                selector_matches(s, labels) for s in self._selectors
            )
            self._wanted[name] = found
        return found

    def keeps(self, pod: Pod, *, local: bool) -> bool:
        """Is ``pod`` (``local``: one of the node's own) read by the table?"""
        return (
            self.everything
            or local
            or self._namespace_wanted(pod.namespace)
            or any(
                ip in block
                for block in self._blocks
                for ip in pod.ips
                if ip.version == block.version
            )
        )


def relevant_pods(
    pods: Sequence[Pod],
    policies: Sequence[NetworkPolicy],
    *,
    local: Collection[str],
    namespace_labels: Callable[[str], Mapping[str, str]],
    settings: Settings,
) -> tuple[Pod, ...]:
    """The pods of ``pods`` a table dispatching ``local`` and planned from ``policies`` reads."""
    relevance = Relevance(policies, namespace_labels=namespace_labels, settings=settings)
    if relevance.everything:
        return tuple(pods)
    return tuple(pod for pod in pods if relevance.keeps(pod, local=pod.key in local))
