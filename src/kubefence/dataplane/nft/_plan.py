"""What the nftables table must contain, as data: peer atoms, pod classes, their sets, dispatch.

Why this module exists: rendering text and deciding what the text means are two jobs. This module
reduces an inventory and the sandbox's pod addresses to a ``RulesetPlan`` (``_model``) built only
from the compiled policy algebra (``kubefence.semantics``); ``_render`` turns the plan into
``nft -f`` text. It runs the steps, each in its own module: address sets of peers (``_peers``),
what each policy allows over them (``_entries``), pod classes (``_classes``), the atom cut
(``_atoms``), with the per-call reuse in ``_memo``. This docstring is where the design is written
down, once.

How the table enforces the policies (all on the ``forward`` hook of the node namespace, which
every pod-to-pod packet crosses in the sandbox):

1. ``ct state established,related accept`` (S06: replies of allowed connections).
2. Optional: packets from the node's own addresses are accepted (S24, see below).
3. The destination address is looked up in the *atom* map (``meta mark set ip daddr map
   @atoms_v4``), then egress of the source: ``ip saddr vmap @egress_v4`` jumps to the source
   pod's egress class chain; pods not isolated for egress are not in the map and pass (S03).
4. The source address is looked up in the atom map, then ingress of the destination: ``ip daddr
   vmap @ingress_v4`` likewise.
5. A class chain does one set lookup, ``meta mark . meta l4proto . th dport @set return``, then
   ``drop``. The set holds everything the class may talk to in that direction (S04, S10: the
   union over every rule of every selecting policy), so per-packet cost does not grow with the
   number of policies. Denied packets are dropped, not rejected, so probes time out. The mark is
   reset to 0 before each lookup and at the end (kubefence owns the packet mark in the node).

Atoms: every peer of every policy denotes a set of addresses (the pods a selector matches, an
ipBlock's ranges; for egress named ports, the pods where the name resolves to one number). An
atom is a largest group of addresses that no such set tells apart, in both IP families at once
(a dual-stack pod's two addresses share one), numbered 1, 2, ...; addresses in no set are atom
0. Class sets are written over atom numbers (``3-5 . tcp . 80``), so replicas with the same
labels and the two families of a pod cost one element, not one per address.

Classes: pods isolated by the same policies in a direction share a chain; for ingress the
resolution of the named ports those policies use against the pod's own ports (S21) is part of
the class key. Egress named ports resolve per destination pod (S21): the pods where a name
resolves to 8080 form their own address set, matched with ``tcp . 8080``.

Admin tiers (ClusterNetworkPolicy v1alpha2, AdminNetworkPolicy/BaselineAdminNetworkPolicy
v1alpha1; semantics in ``docs/admin-tiers.md`` T01-T08, mirrored from ``semantics._tiers`` by
``_tiers``). Only when the inventory has tiered policies; otherwise nothing below is rendered
and the text is byte for byte what it was before tiers. Per direction (egress shown; ingress is
the same with the source atom and ``daddr``):

    forward:  mark = atom(daddr); jump egress_tiers; ...
    egress_tiers:  ip saddr vmap @admin_egress_v4 (goto ad_eg_cN); goto egress_rest
    ad_eg_cN:  meta mark . meta l4proto . th dport vmap @ad_eg_mN (first match: Accept ->
               return, Deny -> drop); not in the map (Pass, no match) -> goto egress_rest
    egress_rest:  ip saddr vmap @egress_v4 (NetworkPolicy, goto eg_cN: set return, else drop);
                  ip saddr vmap @baseline_egress_v4 (goto bl_eg_cN); end: return (allowed)
    bl_eg_cN:  vmap @bl_eg_mN (first match Deny -> drop); otherwise -> return

* Classes: pods selected by the same tiered policies (in evaluation order) share a tier chain
  per tier and direction, found by one verdict-map lookup on the pod's address, as
  NetworkPolicy classes are (hostNetwork pods are never subjects, T04; a policy with no rules
  for a direction is not part of that direction's key, T03). For ingress, how the named ports
  of those policies resolve against the pod's own ports is part of the key (T06).
* Steps: the rules of each policy of the class, in order, over the same atoms as NetworkPolicy
  (tier peers' address sets take part in the one atom cut). Consecutive rules of one policy
  that do the same to a packet (Baseline Accept and Pass both allow) are merged into one step.
* One verdict map per class (``_tiers_first``): the steps folded, in order, into disjoint
  (atom, protocol, port) elements saying what the first matching step does there; only
  answers that differ from no match are elements (Admin Accept and Deny, Baseline Deny), but
  every step shadows the later ones. Per-packet cost: one dispatch lookup and one verdict map
  lookup per tier and direction, whatever the number of policies and rules (before: one set
  lookup per step of the pod's class). The price is table size: a class's map is its own
  (two classes that share a policy do not share its elements) and an earlier rule can cut a
  later one's elements into pieces.
* ``return`` works because the hook ``jump``s to ``egress_tiers`` and everything after it is
  reached by ``goto``: ``return`` anywhere goes back to the hook, which then checks the other
  direction. So an Admin Accept allows this side only (T01: the destination's ingress still
  applies), and a NetworkPolicy class chain (reached by ``goto`` instead of ``jump`` when there
  are tiers) ends the direction, which is how Baseline is skipped exactly where NetworkPolicy
  isolates (T01 step 2).
* Peers (T05): ``namespaces``/``pods`` are the addresses of the non-hostNetwork pods they select;
  ``networks`` their CIDRs, pod addresses included; ``nodes`` the addresses of hostNetwork
  pods (which stand for their node) and of Node objects' ``status.addresses``, by the Node
  objects' labels (a node without one matches only an empty selector); ``domainNames`` match
  nothing (not resolvable offline, T07). Egress named ports resolve per destination pod (one
  set per resolved number); a rule without ``protocols`` matches every protocol and port.
* The input hook (a pod to the node's address) and, with ``allow_from_node`` off, the output
  hook jump to the same direction chains. Flow log: a tier Deny's elements go to a chain
  named after its step (``goto ad_eg_s2``) that logs ``kf deny ad_eg_s2`` with its tier and
  first rule, e.g. ``kf deny ad_eg_s2 Admin deny-mgmt egress[0]``, and drops.
* Updates: ``_update`` replaces the tier dispatch maps, class verdict maps, class chains and
  log chains that differ, by name, as it does for NetworkPolicy classes (a changed action
  touches the verdict maps of the classes its policy selects); only adding the first or
  removing the last tiered policy (the hooks change) installs the whole table.

Implementation-defined choices (documented here, once):

* Protocols. The API only names TCP, UDP and SCTP (S18). A rule whose ``ports`` is absent or empty
  allows every protocol, including ICMP, on every "port" (protocol range 0-255 x 0-65535, which
  also covers the two bytes ``th dport`` reads for port-less protocols); a port entry allows only
  its own protocol. This mirrors ``port_matches``, where protocol None matches everything.
  SCTP elements are rendered (and syntax-checked) even where the kernel has no SCTP sockets.
* Self traffic (S07) never leaves the pod, so it never crosses the forward hook: always allowed
  by construction (``Settings.self_traffic_allowed=False`` cannot be enforced here).
* Node traffic (S24): packets the node itself originates (kubelet probes) go through ``output``,
  not ``forward``, so with ``Settings.allow_from_node`` (the default) they are allowed by
  construction. When ``node_addresses`` are given, forwarded packets whose source is a node
  address are accepted as well (e.g. a hostNetwork pod in its own namespace holding the node
  address). With ``allow_from_node`` False an ``output`` chain applies the destination's
  ingress dispatch to them instead.
* Pods' connections to the node's own addresses are delivered locally (``input``), not
  forwarded; an ``input`` chain applies the source's egress dispatch to them (S05: towards an
  address that is no pod only the source's egress applies). IPv6 neighbour discovery is
  exempt in ``input`` and ``output``, or isolated pods would lose their link to the node.
* hostNetwork pods (S23) are never in the dispatch maps (they share the node's address and
  their traffic does not cross ``forward``) and are not members of pod peers unless
  ``Settings.host_network_selectable`` says so; the addresses the sandbox gives them may still
  fall inside ipBlocks, which then match them like any address.
* Addresses come from ``addresses`` (what the sandbox assigned), never from ``pod.ips``; a pod
  missing from it has no address, is not dispatched and matches no peer set.
* ``Settings.ipblock_matches_pods=False`` removes every (non-hostNetwork) pod address from the
  ipBlock ranges (S15).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import cast

from kubefence.api import Inventory, IPAddress, IPNetwork
from kubefence.dataplane.nft._classes import ClassDraft, draft_classes, finish
from kubefence.dataplane.nft._entries import AddressSets
from kubefence.dataplane.nft._intervals import Interval
from kubefence.dataplane.nft._memo import ClassDrafts, PlanMemo
from kubefence.dataplane.nft._model import Dispatch, FlowLog, PodClass, RulesetPlan
from kubefence.dataplane.nft._peers import Context, address_key
from kubefence.dataplane.nft._tiers import TierMemo, draft_tiers, finish_tiers
from kubefence.semantics import DEFAULT_SETTINGS, Direction, Settings

__all__ = ["plan_ruleset"]


def plan_ruleset(
    inventory: Inventory,
    *,
    addresses: Mapping[str, Sequence[IPAddress]],
    settings: Settings = DEFAULT_SETTINGS,
    node_addresses: Sequence[IPAddress] = (),
    memo: PlanMemo | None = None,
    flow_log: FlowLog | None = None,
    local: Collection[str] | None = None,
    held: Sequence[IPNetwork] = (),
    counters: bool = False,
) -> RulesetPlan:
    """Reduce an inventory and the sandbox's pod addresses to the table's contents.

    ``memo`` carries what an earlier call computed (see ``PlanMemo``); the plan is the same
    with or without it. Raises ``DataplaneError`` when two pods that are not hostNetwork share
    an address (the dispatch maps could not tell them apart). ``flow_log`` adds the log rules
    of ``kubefence flows`` (see ``FlowLog``); without it the text is byte-identical to before.
    ``local`` (pod keys) limits the egress and ingress dispatch to those pods, as a node's
    agent enforces only its own pods (each side of a connection is enforced on the node of
    its pod); peers stay cluster-wide. ``None`` dispatches every pod. ``held`` (the node's
    pod CIDRs) makes the table drop forwarded packets from or to an address in them that is
    no planned pod of the node (``local``; every pod when None) yet, and packets from such an
    address to the node itself: fail closed for a pod the agent has not seen. ``counters``
    puts a packet counter on each verdict rule of the class chains (the agent's per-policy
    metrics).
    """
    memo = memo or PlanMemo()
    memo.begin()
    context = memo.context(inventory, addresses, settings)
    pod_of = context.pod_of()  # raises when two pods that are not hostNetwork share one
    memos = memo.policies(inventory.policies)
    drafts = memo.class_drafts(context, memos, local)
    if drafts is None:
        sets = AddressSets()
        drafts = ClassDrafts(
            sets,
            tuple(draft_classes(context, sets, memos, Direction.EGRESS, local=local)),
            tuple(draft_classes(context, sets, memos, Direction.INGRESS, local=local)),
        )
        memo.keep_class_drafts(context, memos, local, drafts)
    sets = drafts.sets
    egress_drafts = cast("tuple[ClassDraft, ...]", drafts.egress)
    ingress_drafts = cast("tuple[ClassDraft, ...]", drafts.ingress)
    tier_drafts = None
    if inventory.admin_policies:
        if not isinstance(memo.tiers, TierMemo):
            memo.tiers = TierMemo()
        tier_drafts = draft_tiers(inventory, context, sets, memo=memo.tiers)
    atoms, atoms_of, legend = memo.atoms(sets, pod_of)
    count = memo.atom_count()  # max(r.atom for r in atoms), counted once per cut
    egress, egress_dispatch = _finish(
        context, memo, egress_drafts, Direction.EGRESS, atoms_of, count
    )
    ingress, ingress_dispatch = _finish(
        context, memo, ingress_drafts, Direction.INGRESS, atoms_of, count
    )
    nodes = tuple(sorted(set(node_addresses), key=address_key)) if settings.allow_from_node else ()
    return RulesetPlan(
        atoms=atoms,
        legend=legend,
        egress=egress,
        ingress=ingress,
        egress_dispatch=egress_dispatch,
        ingress_dispatch=ingress_dispatch,
        node_addresses=nodes,
        allow_from_node=settings.allow_from_node,
        flow_log=flow_log,
        tiers=None
        if tier_drafts is None
        else finish_tiers(
            context, memo, tier_drafts, atoms_of, logged=flow_log is not None, counted=counters
        ),
        held=tuple(held),
        known=_known(context, local) if held else (),
        counters=counters,
    )


def _finish(
    context: Context,
    memo: PlanMemo,
    drafts: tuple[ClassDraft, ...],
    direction: Direction,
    atoms_of: Mapping[int, tuple[Interval, ...]],
    count: int,
) -> tuple[tuple[PodClass, ...], tuple[Dispatch, ...]]:
    """``finish``, or the previous call's result for the same drafts and atoms (objects)."""
    known = memo.finished(direction, drafts, atoms_of)
    if known is not None:
        return cast("tuple[tuple[PodClass, ...], tuple[Dispatch, ...]]", known)
    done = finish(context, memo, drafts, direction, atoms_of, count)
    memo.remember_finished(direction, drafts, atoms_of, done)
    return done


def _known(context: Context, local: Collection[str] | None) -> tuple[IPAddress, ...]:
    """The addresses of the pods this table dispatches (planned, not hostNetwork)."""
    keys = context.addresses.keys() if local is None else local
    found: list[IPAddress] = []
    for key in keys:
        pod = context.pod(key)
        if pod is not None and not pod.host_network:
            found.extend(context.addresses[key])
    return tuple(sorted(found, key=address_key))
