"""Admin tiers (ClusterNetworkPolicy) on pod classes: each tier's first match, for every pair.

Why this module exists: the engine must give the reference's answers (``semantics._tiers``,
``docs/admin-tiers.md``) with tiered policies too, and a tier is an ordered list of rules where
the first match decides, not a union of allows, so it cannot ride on the NetworkPolicy
combination (``_combine``). Per direction and tier it computes two bit matrices over
[subject class, other class]: "the tier accepts" and "the tier denies" (a Pass, or no match,
sets neither); ``_compute`` then combines them with NetworkPolicy's result, per side:

    side_ok = admin_accept or (not admin_deny and (np_isolated ? np_ok : not baseline_deny))

How the first match is vectorised. A class's row of a tier depends on the class only through
the policies that select it (egress: the rule vectors are peer AND port over the destinations)
or, for ingress, also through which rules' ports match at it (the port is judged at the
destination, which is the subject). Classes with the same such key form one *group*; a tier is
evaluated on groups, policy by policy in tier order: a policy's own first match is one vector
over the other side (rules in written order, numpy masks), written into the still undecided
cells of the rows of the groups it selects. Work grows with policies x groups x classes / 8,
not with pairs x rules. Rows are then gathered per class. Ingress rows stay [destination,
source]: ``apply_ingress`` applies them to NetworkPolicy's ingress rows, which have that shape
too, before its one 8 x 8 bit-block transpose into destination columns.

Matching (facts of ``semantics._tiers``): subjects and ``namespaces``/``pods`` peers are
never hostNetwork pods; ``networks`` match pods' IPs (any of them), hostNetwork pods included,
whatever ``Settings.ipblock_matches_pods`` says; ``nodes`` match a hostNetwork pod (when it acts
as its node, S23) by its node's labels, an empty selector any node, a non-empty one nothing
when the node has no Node object ("not evaluated" counts as no match, T07); ``domainNames``
never match a pod; a named port matches a destination that is a selectable pod declaring that
name with the connection's protocol and number.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from kubefence.api import (
    AdminPeer,
    AdminPeerKind,
    AdminPort,
    AdminRule,
    ClusterNetworkPolicy,
    Inventory,
    IPBlock,
    LabelSelector,
    Protocol,
    Tier,
)
from kubefence.engine._classes import ClassIndex, PodClasses
from kubefence.engine._tier_bits import TierMatrices, first_match, groups, write
from kubefence.semantics import Settings, selector_matches

__all__ = ["TierPlan", "has_node_peers", "tier_blocks"]

BoolArray = npt.NDArray[np.bool_]
ByteArray = npt.NDArray[np.uint8]
IntArray = npt.NDArray[np.int64]


def tier_blocks(
    policies: Sequence[ClusterNetworkPolicy], *, after: tuple[IPBlock, ...] = ()
) -> tuple[IPBlock, ...]:
    """``after``, then the ``networks`` CIDRs of every rule not in it, as ipBlocks without
    excepts, so that classes split on membership in each (first-seen order, no repeats)."""
    seen: dict[IPBlock, None] = dict.fromkeys(after)
    for policy in policies:
        for rule in (*policy.ingress, *policy.egress):
            for peer in rule.peers:
                for net in peer.networks:
                    seen.setdefault(IPBlock(cidr=net), None)
    return tuple(seen)


def has_node_peers(policies: Sequence[ClusterNetworkPolicy]) -> bool:
    return any(
        peer.kind is AdminPeerKind.NODES
        for policy in policies
        for rule in (*policy.ingress, *policy.egress)
        for peer in rule.peers
    )


_Rules = tuple[tuple[ClusterNetworkPolicy, tuple[AdminRule, ...]], ...]


class TierPlan:
    """The port-independent part: policies in tier order, subject and peer vectors."""

    def __init__(
        self,
        policies: Sequence[ClusterNetworkPolicy],
        *,
        classes: PodClasses,
        index: ClassIndex,
        settings: Settings,
        node_labels: Mapping[str, Mapping[str, str]],
        resolved: Callable[[str, Protocol], IntArray],
    ) -> None:
        self.classes = classes
        self.index = index
        self.settings = settings
        self._resolved = resolved
        self._node_labels = node_labels
        self._block_pos = {b: k for k, b in enumerate(classes.blocks)}
        self._subjects: dict[int, BoolArray] = {}
        self._peers: dict[tuple[AdminPeer, ...], BoolArray] = {}
        self._node_cache: dict[LabelSelector, BoolArray] = {}
        self._host_nodes: list[tuple[int, str | None]] | None = None

        def ordered(tier: Tier) -> tuple[ClusterNetworkPolicy, ...]:
            return tuple(sorted((p for p in policies if p.tier is tier), key=lambda p: p.order))

        self.admin = ordered(Tier.ADMIN)
        self.baseline = ordered(Tier.BASELINE)

    @classmethod
    def of(
        cls,
        inventory: Inventory,
        index: ClassIndex,
        *,
        settings: Settings,
        resolved: Callable[[str, Protocol], IntArray],
    ) -> TierPlan | None:
        """The plan of ``inventory``'s tiered policies on ``index``'s classes (None: none)."""
        if not inventory.admin_policies:
            return None
        return cls(
            inventory.admin_policies,
            classes=index.classes,
            index=index,
            settings=settings,
            node_labels={n.name: n.labels for n in inventory.nodes},
            resolved=resolved,
        )

    # --- vectors over classes --------------------------------------------------------------

    def subject(self, policy: ClusterNetworkPolicy) -> BoolArray:
        """Classes ``policy`` applies to (T04): never hostNetwork pods."""
        hit = self._subjects.get(id(policy))
        if hit is None:
            ids = self.index.select(
                policy.pod_selector, namespace_selector=policy.namespace_selector
            )
            hit = np.zeros(self.classes.count, dtype=np.bool_)
            hit[ids] = True
            hit &= ~self.classes.host_network
            self._subjects[id(policy)] = hit
        return hit

    def peers(self, peers: tuple[AdminPeer, ...]) -> BoolArray:
        """Classes any of ``peers`` matches (T05), as the other endpoint of a connection."""
        hit = self._peers.get(peers)
        if hit is None:
            hit = self._peers[peers] = self._peer_vector(peers)
        return hit

    def _peer_vector(self, peers: tuple[AdminPeer, ...]) -> BoolArray:
        classes = self.classes
        out = np.zeros(classes.count, dtype=np.bool_)
        for peer in peers:
            if peer.kind in (AdminPeerKind.NAMESPACES, AdminPeerKind.PODS):
                ids = self.index.select(
                    peer.pod_selector if peer.kind is AdminPeerKind.PODS else None,
                    namespace_selector=peer.namespace_selector,
                )
                out[ids[~classes.host_network[ids]]] = True
            elif peer.kind is AdminPeerKind.NETWORKS:
                for net in peer.networks:
                    out[classes.block_classes[self._block_pos[IPBlock(cidr=net)]]] = True
            elif peer.kind is AdminPeerKind.NODES:
                assert peer.node_selector is not None
                out |= self._nodes(peer.node_selector)
            # domainNames never match a pod (T05)
        return out

    def _nodes(self, selector: LabelSelector) -> BoolArray:
        """hostNetwork classes (acting as their node, S23) whose node ``selector`` matches."""
        hit = self._node_cache.get(selector)
        if hit is not None:
            return hit
        classes = self.classes
        hit = np.zeros(classes.count, dtype=np.bool_)
        if self._host_nodes is None:
            self._host_nodes = (
                []
                if self.settings.host_network_selectable  # then they are pods, not nodes
                else [
                    (int(classes.of_pod[i]), pod.node)
                    for i, pod in enumerate(classes.pods)
                    if pod.host_network
                ]
            )
        for cls, node in self._host_nodes:
            if node is None:
                continue
            labels = self._node_labels.get(node)
            # A node without a Node object: only an empty selector can be evaluated (T07).
            hit[cls] = selector.is_empty if labels is None else selector_matches(selector, labels)
        self._node_cache[selector] = hit
        return hit

    def ports(self, rule: AdminRule, *, effective: IntArray, protocol: Protocol) -> BoolArray:
        """Destination classes where the connection's port matches one of the rule's entries
        (T06); ``effective`` is the port number per destination class, -1 when unreachable."""
        count = self.classes.count
        if not rule.ports:
            return effective >= 0
        out = np.zeros(count, dtype=np.bool_)
        for entry in rule.ports:
            if entry.name is not None:  # a selectable pod destination declaring the name
                out |= (self._resolved(entry.name, protocol) == effective) & self.index.pod_like
            elif entry.protocol is protocol and entry.low is not None and entry.high is not None:
                out |= (effective >= entry.low) & (effective <= entry.high)
        return out & (effective >= 0)

    # --- one port ----------------------------------------------------------------------------

    def matrices(
        self,
        *,
        effective: IntArray,
        protocol: Protocol,
        egress_isolated: BoolArray,
        ingress_isolated: BoolArray,
    ) -> TierMatrices:
        """Both tiers' verdicts on both sides on one port; ``*_isolated``: the classes
        NetworkPolicy isolates for that direction (there Baseline has no say)."""
        ports: dict[tuple[AdminPort, ...], BoolArray] = {}

        def side(ingress: bool, isolated: BoolArray) -> tuple[ByteArray | None, ByteArray | None]:
            admin, baseline = (
                self._tier(
                    policies, ingress=ingress, effective=effective, protocol=protocol, ports=ports
                )
                for policies in (self.admin, self.baseline)
            )
            accept = block = None
            if admin is not None:
                accept_g, deny_g, group_of = admin
                accept, block = accept_g[group_of], deny_g[group_of]
            if baseline is not None:  # only where NetworkPolicy does not isolate the subject
                _, deny_g, group_of = baseline
                deny_g = np.concatenate([deny_g, np.zeros_like(deny_g[:1])])
                denied = deny_g[np.where(isolated, len(deny_g) - 1, group_of)]
                block = denied if block is None else np.bitwise_or(block, denied, out=block)
            return accept, block

        egress_accept, egress_block = side(False, egress_isolated)
        ingress_accept, ingress_block = side(True, ingress_isolated)
        return TierMatrices(
            egress_accept=egress_accept,
            egress_block=egress_block,
            ingress_accept=ingress_accept,
            ingress_block=ingress_block,
        )

    def _tier(
        self,
        policies: tuple[ClusterNetworkPolicy, ...],
        *,
        ingress: bool,
        effective: IntArray,
        protocol: Protocol,
        ports: dict[tuple[AdminPort, ...], BoolArray],
    ) -> tuple[ByteArray, ByteArray, IntArray] | None:
        """(accept, deny) packed [subject group, other] and the group of each subject class,
        or None when no policy of the tier has a rule of this direction for a subject.
        ``ports`` memoises port vectors for this port."""
        active: _Rules = tuple(
            (p, rules)
            for p in policies
            if (rules := p.ingress if ingress else p.egress) and self.subject(p).any()
        )
        if not active:
            return None
        count = self.classes.count
        width = -(-count // 8)
        # Port vectors per rule, over destinations (egress: the other side; ingress: subjects).
        at_rules: list[list[BoolArray]] = []
        for _, rules in active:
            vectors = []
            for rule in rules:
                vector = ports.get(rule.ports)
                if vector is None:
                    vector = ports[rule.ports] = self.ports(
                        rule, effective=effective, protocol=protocol
                    )
                vectors.append(vector)
            at_rules.append(vectors)
        columns = [self.subject(p) for p, _ in active]
        if ingress:  # rows whose subject sees a different set of port-matching rules differ
            for (policy, _), vectors in zip(active, at_rules, strict=True):
                subject = self.subject(policy)
                for vector in vectors:
                    seen = vector[subject]
                    if seen.any() and not seen.all():
                        columns.append(subject & vector)
        group_of, first, member = groups(np.packbits(np.stack(columns, axis=1), axis=1))
        shape = (len(first), width)
        undecided = np.full(shape, 0xFF, dtype=np.uint8)
        accept = np.zeros(shape, dtype=np.uint8)
        deny = np.zeros(shape, dtype=np.uint8)
        for j, (_, rules) in enumerate(active):
            rows = np.flatnonzero(member[:, j])
            if not len(rows):
                continue
            if ingress:  # the rules whose port matches at the group's destination
                at = first[rows]
                pattern = np.stack([v[at] for v in at_rules[j]], axis=1)
                by_pattern: dict[bytes, tuple[list[int], BoolArray]] = {}
                for row, bits in zip(rows.tolist(), pattern, strict=True):
                    by_pattern.setdefault(bits.tobytes(), ([], bits))[0].append(row)
                for listed, on in by_pattern.values():
                    matched = [
                        (rule.action, self.peers(rule.peers))
                        for rule, hit in zip(rules, on.tolist(), strict=True)
                        if hit
                    ]
                    write(
                        np.asarray(listed, dtype=np.int64),
                        first_match(matched, count),
                        undecided=undecided,
                        accept=accept,
                        deny=deny,
                    )
            else:
                matched = [
                    (rule.action, self.peers(rule.peers) & vector)
                    for rule, vector in zip(rules, at_rules[j], strict=True)
                ]
                write(
                    rows,
                    first_match(matched, count),
                    undecided=undecided,
                    accept=accept,
                    deny=deny,
                )
        return accept, deny, group_of
