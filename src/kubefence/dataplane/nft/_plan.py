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

from kubefence.api import Inventory, IPAddress
from kubefence.dataplane.nft._atoms import cut_atoms
from kubefence.dataplane.nft._classes import draft_classes, finish
from kubefence.dataplane.nft._entries import AddressSets
from kubefence.dataplane.nft._memo import PlanMemo
from kubefence.dataplane.nft._model import FlowLog, RulesetPlan
from kubefence.dataplane.nft._peers import Context, address_key
from kubefence.errors import DataplaneError
from kubefence.semantics import DEFAULT_SETTINGS, Direction, Settings

__all__ = ["plan_ruleset"]


def _check_unique_addresses(context: Context) -> None:
    owners: dict[IPAddress, str] = {}
    for pod in context.addressed:
        if pod.host_network:
            continue
        for address in context.addresses[pod.key]:
            other = owners.setdefault(address, pod.key)
            if other != pod.key:
                raise DataplaneError(
                    f"pods {other} and {pod.key} were both given address {address}; "
                    "every pod that is not hostNetwork needs its own addresses"
                )


def plan_ruleset(
    inventory: Inventory,
    *,
    addresses: Mapping[str, Sequence[IPAddress]],
    settings: Settings = DEFAULT_SETTINGS,
    node_addresses: Sequence[IPAddress] = (),
    memo: PlanMemo | None = None,
    flow_log: FlowLog | None = None,
    local: Collection[str] | None = None,
) -> RulesetPlan:
    """Reduce an inventory and the sandbox's pod addresses to the table's contents.

    ``memo`` carries what an earlier call computed (see ``PlanMemo``); the plan is the same
    with or without it. Raises ``DataplaneError`` when two pods that are not hostNetwork share
    an address (the dispatch maps could not tell them apart). ``flow_log`` adds the log rules
    of ``kubefence flows`` (see ``FlowLog``); without it the text is byte-identical to before.
    ``local`` (pod keys) limits the egress and ingress dispatch to those pods, as a node's
    agent enforces only its own pods (each side of a connection is enforced on the node of
    its pod); peers stay cluster-wide. ``None`` dispatches every pod.
    """
    memo = memo or PlanMemo()
    memo.begin()
    context = memo.context(inventory, addresses, settings)
    _check_unique_addresses(context)
    memos = memo.policies(inventory.policies)
    sets = AddressSets()
    egress_drafts = draft_classes(context, sets, memos, Direction.EGRESS, local=local)
    ingress_drafts = draft_classes(context, sets, memos, Direction.INGRESS, local=local)
    pod_of: dict[tuple[int, int], str] = {}
    for pod in context.addressed:
        for address in context.addresses[pod.key]:
            pod_of.setdefault(address_key(address), pod.key)
    atoms, atoms_of, legend = cut_atoms(sets, pod_of)
    count = max((r.atom for r in atoms), default=0)
    egress, egress_dispatch = finish(
        context, memo, egress_drafts, Direction.EGRESS, atoms_of, count
    )
    ingress, ingress_dispatch = finish(
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
    )
