"""Cross-tenant paths, counted per namespace pair and workload pair on the engine's classes.

Why this module exists: "which pods of tenant A may connect to pods of tenant B" has millions of
answers in a large cluster (3.6 million cross-tenant pod pairs on the 10,000-pod benchmark
cluster), so listing them pair by pair and asking the reference evaluator why for each made the
report unusable (136 s at 2,000 pods). Pods of one engine class are alike to every policy, and
the engine answers every class pair for all port classes at once, as one bit mask per class
pair (``engine.port_masks``; bit k: port class k is open). The report expands the masks to
*units* (the pods of one workload that share a class, and a node when traffic from a node is
allowed, S24), then sums pod pairs and ORs port masks per workload pair and per namespace pair
with numpy. Only the few example pod pairs shown per namespace pair become records, and only a
bounded number of them (``explain``) are explained by ``decide``, which names the policy rules
that open them.

A port mask is exact for every pod pair of a unit pair: both units' pods share namespace,
labels, declared ports and ipBlock membership (a class) and, where node traffic matters, the
node, which is all any verdict reads.

The records, the mask bookkeeping and the aggregation that fills the records are kept in one
module (a little over 400 lines): each is only meaningful with the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from kubefence.api import Inventory, Protocol, port_label, rule_path
from kubefence.audit._common import range_label
from kubefence.engine import PortClass, ReachabilityAnalysis, mask_bits
from kubefence.semantics import Decision, Reason, Settings, SideDecision, decide, merge

__all__ = [
    "NamespacePath",
    "Opening",
    "PodPath",
    "PortMasks",
    "WorkloadPath",
    "cross_tenant_paths",
    "port_labels",
]

IntArray = npt.NDArray[np.int64]
MaskArray = npt.NDArray[np.unsignedinteger[npt.NBitBase]]

PROTOCOLS = (Protocol.TCP, Protocol.UDP, Protocol.SCTP)


@dataclass(frozen=True, slots=True, order=True)
class Opening:
    """What opened one side of a path: a policy rule, or the side not being isolated."""

    direction: str  # "egress" (at the source) or "ingress" (at the destination)
    policy: str | None  # "ns/name"; None when the side is not isolated
    rule: int | None = None
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        if self.policy is None:
            return f"{self.direction}: not isolated"
        where = f" ({self.file}:{self.line})" if self.file and self.line else ""
        path = rule_path(self.direction, self.rule if self.rule is not None else 0)
        return f"{self.direction}: {self.policy} {path}{where}"


@dataclass(frozen=True, slots=True)
class PodPath:
    """``source`` may connect to ``destination`` on ``ports``: "8080/TCP", "8000-9000/TCP"
    (adjacent port classes merged); "other/TCP" (every port no policy names); "all/TCP"; or
    "all ports". ``explained`` False: the report's ``explain`` budget was spent, so
    ``opened_by`` was not asked (``kubefence explain`` answers for one pair); when True,
    ``opened_by`` may still be empty where no policy decides (e.g. node traffic, S24)."""

    source: str
    destination: str
    ports: tuple[str, ...]
    opened_by: tuple[Opening, ...]
    explained: bool = True


@dataclass(frozen=True, slots=True)
class WorkloadPath:
    """Pods of workload ``source`` may connect to pods of ``destination`` (``ns/Kind/name``, or
    ``ns/pod`` for a pod without owner): ``pod_pairs`` pairs, ``ports`` the union of their
    ports, ``example`` one of those pairs with its own ports."""

    source: str
    destination: str
    pod_pairs: int
    ports: tuple[str, ...]
    example: PodPath


@dataclass(frozen=True, slots=True)
class NamespacePath:
    """Pods of namespace ``source`` may connect to pods of ``destination``, two namespaces of
    different tenants: ``pod_pairs`` ordered pod pairs between ``workload_pairs`` workload
    pairs, on ``ports`` (the union over those pairs); ``workloads``: the first few workload
    pairs (by name), each with an example pod pair (none beyond the report's example limit)."""

    source: str
    destination: str
    source_tenant: str
    destination_tenant: str
    pod_pairs: int
    workload_pairs: int
    ports: tuple[str, ...]
    workloads: tuple[WorkloadPath, ...]


# --- port classes as bit masks ----------------------------------------------------------------


def port_labels(allowed: Sequence[PortClass], classes: Sequence[PortClass]) -> tuple[str, ...]:
    """Labels of the allowed port classes: adjacent ranges merged (``8000-9000/TCP``), every port
    no policy names as ``other/TCP``, a protocol open on all its classes as ``all/TCP``, and
    ``all ports`` when every protocol is."""
    labels: list[str] = []
    whole = 0
    for protocol in PROTOCOLS:
        tried = [c for c in classes if c.protocol is protocol]
        here = [c for c in allowed if c.protocol is protocol]
        if here and len(here) == len(tried):
            whole += 1
            labels.append(port_label("all", protocol.value))
            continue
        for low, high in merge((c.low, c.high) for c in here if not c.other):
            labels.append(range_label(protocol, low, high))
        labels += [port_label("other", protocol.value) for c in here if c.other]
    return ("all ports",) if whole == len(PROTOCOLS) else tuple(labels)


class PortMasks:
    """``code[a, b]``: the port classes open between distinct pods of classes a and b, as bits
    (bit k of word k // bits: ``classes[k]``), from ``engine.port_masks``: one classes x
    classes x words array of the smallest unsigned type that holds the bits (uint16 for up to
    16 port classes) instead of one boolean matrix per port class.
    """

    def __init__(self, classes: Sequence[PortClass], code: MaskArray) -> None:
        self.classes = tuple(classes)
        self.bits = mask_bits(len(classes))
        self.words = code.shape[2]
        self.code = code
        self.every = np.zeros(self.words, dtype=code.dtype)  # every port class open
        for k in range(len(classes)):
            self.every[k // self.bits] |= code.dtype.type(1 << (k % self.bits))

    def allowed(self, mask: MaskArray) -> list[PortClass]:
        """The port classes of one mask (a vector of ``words``)."""
        return [
            c
            for k, c in enumerate(self.classes)
            if int(mask[k // self.bits]) >> (k % self.bits) & 1
        ]

    def labels_of(self, rows: MaskArray) -> tuple[list[tuple[str, ...]], list[int]]:
        """``port_labels`` of each row (one mask per row), computed once per distinct mask, and
        a small integer naming each row's mask."""
        if not len(rows):
            return [], []
        flat: npt.NDArray[Any]
        if self.words == 1:
            flat = rows[:, 0]
        else:
            size = rows.dtype.itemsize * self.words
            flat = np.ascontiguousarray(rows).view(np.dtype((np.void, size))).ravel()
        _, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
        labels = [port_labels(self.allowed(rows[i]), self.classes) for i in first.tolist()]
        ids: list[int] = inverse.ravel().tolist()
        return [labels[k] for k in ids], ids


# --- explanations -----------------------------------------------------------------------------


def _openings(side: SideDecision | None, direction: str) -> list[Opening]:
    if side is None or not side.applicable:
        return []
    if not side.isolated:
        return [Opening(direction, None)]
    return [
        Opening(direction, a.policy.key, a.rule, a.policy.file, a.line) for a in side.admitted_by
    ]


def explain_pair(
    inventory: Inventory, src: str, dst: str, allowed: Sequence[PortClass], settings: Settings
) -> tuple[Opening, ...]:
    """The rules the reference evaluator says open ``allowed`` from ``src`` to ``dst``."""
    openings: dict[Opening, None] = {}
    for c in allowed:
        decision: Decision = decide(
            inventory, src, dst, port=c.port, protocol=c.protocol, settings=settings
        )
        if decision.reason is Reason.POLICIES:
            for o in _openings(decision.egress, "egress") + _openings(decision.ingress, "ingress"):
                openings[o] = None
    return tuple(sorted(openings))


# --- units and their pairs --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Units:
    """Pods of labelled namespaces grouped by (namespace, workload, class[, node | pod])."""

    of_pod: IntArray  # unit per pod, -1 for pods of unlabelled namespaces
    first: IntArray  # a pod of each unit (the first in inventory order)
    weight: IntArray
    cls: IntArray
    workload: IntArray  # workload id, ordered by (namespace, workload name)
    namespace: IntArray  # position in the report's namespace order
    tenant: IntArray
    workload_names: tuple[str, ...]


def _workload(inventory: Inventory, i: int) -> str:
    pod = inventory.pods[i]
    return f"{pod.namespace}/{pod.owner}" if pod.owner else pod.key


def _units(
    inventory: Inventory,
    analysis: ReachabilityAnalysis,
    tenants: Mapping[str, str | None],
    position: Mapping[str, int],
    nodes: set[str],
) -> _Units:
    pods = inventory.pods
    of_class = analysis.classes.of_pod
    tenant_ids = {t: k for k, t in enumerate(sorted({t for t in tenants.values() if t}))}
    members = [i for i, p in enumerate(pods) if tenants[p.namespace] is not None]
    names = sorted({(position[pods[i].namespace], _workload(inventory, i)) for i in members})
    workload_id = {w: k for k, w in enumerate(names)}
    keys: dict[tuple[object, ...], int] = {}
    of_pod = np.full(len(pods), -1, dtype=np.int64)
    first: list[int] = []
    for i in sorted(
        members, key=lambda i: (position[pods[i].namespace], _workload(inventory, i), i)
    ):
        pod = pods[i]
        key = (
            workload_id[(position[pod.namespace], _workload(inventory, i))],
            int(of_class[i]),
            pod.node if pod.node in nodes else None,
            i if pod.host_network else -1,
        )
        unit = keys.get(key)
        if unit is None:
            unit = keys[key] = len(first)
            first.append(i)
        of_pod[i] = unit
    firsts = np.asarray(first, dtype=np.int64)
    wl = np.asarray([k[0] for k in keys], dtype=np.int64)
    ns = np.asarray([position[pods[i].namespace] for i in first], dtype=np.int64)
    return _Units(
        of_pod=of_pod,
        first=firsts,
        weight=np.bincount(of_pod[of_pod >= 0], minlength=len(first)).astype(np.int64),
        cls=of_class[firsts] if len(first) else np.zeros(0, dtype=np.int64),
        workload=wl,
        namespace=ns,
        tenant=np.asarray(
            [tenant_ids[tenants[pods[i].namespace] or ""] for i in first], dtype=np.int64
        ),
        workload_names=tuple(w for _, w in names),
    )


def _first_ranks(wanted: IntArray, order: IntArray, budget: int | None) -> IntArray:
    """How many of its ``wanted`` items each group gets when ``budget`` items are handed out
    rank by rank (every group's first item, then every second one, ...) in ``order``."""
    if budget is None:
        return wanted.copy()
    got = np.zeros(len(wanted), dtype=np.int64)
    rank = 0
    while budget > 0 and rank < int(wanted.max(initial=0)):
        take = order[wanted[order] > rank][:budget]
        got[take] += 1
        budget -= len(take)
        rank += 1
    return got


def cross_tenant_paths(
    inventory: Inventory,
    analysis: ReachabilityAnalysis,
    masks: PortMasks,
    overrides: Sequence[tuple[int, Sequence[int]]],
    tenants: Mapping[str, str | None],
    names: Sequence[str],
    *,
    examples: int,
    limit: int | None,
    explain: int | None,
    settings: Settings,
) -> tuple[NamespacePath, ...]:
    """Every pair of namespaces of two different tenants with a pod pair that may connect,
    counted and ORed over unit pairs; see the module docstring."""
    position = {n: i for i, n in enumerate(names)}
    hosts = {p.node for p in inventory.pods if p.host_network and p.node}
    nodes = hosts if overrides else set()
    units = _units(inventory, analysis, tenants, position, nodes)
    if not len(units.first):
        return ()
    code = masks.code[np.ix_(units.cls, units.cls)]
    for src, dsts in overrides:  # S24: traffic from a pod's own node, on every port
        u, targets = units.of_pod[src], units.of_pod[list(dsts)]
        if u >= 0:
            code[u, targets[targets >= 0]] = masks.every
    open_any = (code != 0).any(axis=2)
    open_any &= units.tenant[:, None] != units.tenant[None, :]
    us, ud = np.nonzero(open_any)
    if not len(us):
        return ()
    n_ns, n_wl = len(names), len(units.workload_names)
    ns_key = units.namespace[us] * n_ns + units.namespace[ud]
    key = (ns_key * n_wl + units.workload[us]) * n_wl + units.workload[ud]
    order = np.argsort(key, kind="stable")  # nonzero is by (us, ud): kept within a key
    us, ud, key = us[order], ud[order], key[order]
    pair_masks = code[us, ud]
    pod_pairs = units.weight[us] * units.weight[ud]
    wl_start = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    wl_pairs = np.add.reduceat(pod_pairs, wl_start)
    wl_masks = np.bitwise_or.reduceat(pair_masks, wl_start, axis=0)
    wl_ns = ns_key[order][wl_start]
    ns_start = np.flatnonzero(np.r_[True, wl_ns[1:] != wl_ns[:-1]])
    ns_pairs = np.add.reduceat(wl_pairs, ns_start)
    ns_masks = np.bitwise_or.reduceat(wl_masks, ns_start, axis=0)
    ns_ends = np.r_[ns_start[1:], len(wl_start)]

    # Shown: the first ``examples`` workload pairs of each namespace pair, rank by rank over
    # the namespace pairs (the largest first) up to ``limit`` in all; explained likewise, the
    # first ``explain`` of them.
    n_groups = len(ns_start)
    by_size = np.lexsort((np.arange(n_groups), -ns_pairs))
    wanted = np.minimum(ns_ends - ns_start, examples)
    shown = _first_ranks(wanted, by_size, limit)
    n_explained = _first_ranks(shown, by_size, explain)
    total = int(shown.sum())
    offsets = np.cumsum(shown) - shown
    shown_w = np.repeat(ns_start, shown) + (np.arange(total) - np.repeat(offsets, shown))

    pods = inventory.pods
    first_pair = wl_start[shown_w]  # the first unit pair of a workload pair is its example
    ex_src = units.first[us[first_pair]].tolist()
    ex_dst = units.first[ud[first_pair]].tolist()
    ex_cls_s = units.cls[us[first_pair]].tolist()
    ex_cls_d = units.cls[ud[first_pair]].tolist()
    ex_masks = pair_masks[first_pair]
    ex_labels, ex_ids = masks.labels_of(ex_masks)
    wl_labels, _ = masks.labels_of(wl_masks[shown_w])
    ns_labels, _ = masks.labels_of(ns_masks)
    wl_src = units.workload[us[first_pair]].tolist()
    wl_dst = units.workload[ud[first_pair]].tolist()
    wl_count = wl_pairs[shown_w].tolist()
    ns_count = ns_pairs.tolist()
    ns_src = units.namespace[us[wl_start[ns_start]]].tolist()
    ns_dst = units.namespace[ud[wl_start[ns_start]]].tolist()
    n_wl = (ns_ends - ns_start).tolist()
    cache: dict[tuple[int, int, int], tuple[Opening, ...]] = {}

    def opened_by(x: int) -> tuple[Opening, ...]:
        src, dst = ex_src[x], ex_dst[x]
        host = pods[src].host_network
        key = (ex_cls_s[x], ex_cls_d[x], ex_ids[x])
        hit = None if host else cache.get(key)
        if hit is None:
            allowed = masks.allowed(ex_masks[x])
            hit = explain_pair(inventory, pods[src].key, pods[dst].key, allowed, settings)
            if not host:
                cache[key] = hit
        return hit

    keys = [p.key for p in pods]
    wl_names = units.workload_names
    out: list[NamespacePath] = []
    x = 0
    for g, (count, explained) in enumerate(zip(shown.tolist(), n_explained.tolist(), strict=True)):
        workloads = []
        for r in range(count):
            example = PodPath(
                keys[ex_src[x]],
                keys[ex_dst[x]],
                ex_labels[x],
                opened_by(x) if r < explained else (),
                r < explained,
            )
            workloads.append(
                WorkloadPath(
                    wl_names[wl_src[x]], wl_names[wl_dst[x]], wl_count[x], wl_labels[x], example
                )
            )
            x += 1
        a, b = names[ns_src[g]], names[ns_dst[g]]
        out.append(
            NamespacePath(
                a,
                b,
                tenants[a] or "",
                tenants[b] or "",
                ns_count[g],
                n_wl[g],
                ns_labels[g],
                tuple(workloads),
            )
        )
    return tuple(out)
