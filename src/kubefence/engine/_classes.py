"""Pods reduced to equivalence classes, and label selectors evaluated once per class.

Why this module exists: a cluster of 100,000 pods made by Deployments has far fewer distinct
pods as far as NetworkPolicy can tell: two pods of one namespace with the same labels, the same
container ports, the same hostNetwork flag and the same membership in every ipBlock of every
policy are indistinguishable to every selector, ipBlock and named port. The engine computes on
those classes and expands to pods only when asked. Classes are ordered by namespace so that the
classes of one namespace form one contiguous range (a numpy slice, not a fancy index).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kubefence.api import ContainerPort, Inventory, IPBlock, Labels, LabelSelector, Operator, Pod
from kubefence.semantics import (
    CompiledPolicy,
    PeerKind,
    Settings,
    ip_in_block,
    selector_matches,
)

__all__ = ["ClassIndex", "PodClasses", "classify"]

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class PodClasses:
    """Pods (in ``Inventory.pods`` order) grouped into classes ordered by namespace.

    ``of_pod[i]`` is the class of pod ``i``; ``namespaces`` lists every namespace that holds a
    pod or a policy, sorted; ``ns_range[k]`` is the half-open class range of namespace ``k``.
    """

    pods: tuple[Pod, ...]
    of_pod: IntArray
    weight: IntArray  # number of pods per class
    namespace_of: IntArray  # namespace index per class
    labels: tuple[Labels, ...]
    ports: tuple[tuple[ContainerPort, ...], ...]
    host_network: BoolArray
    blocks: tuple[IPBlock, ...]  # every distinct ipBlock of every peer
    in_block: BoolArray  # [class, block]: some IP of the class's pods is inside the block
    namespaces: tuple[str, ...]
    namespace_labels: tuple[Mapping[str, str], ...]
    ns_range: tuple[tuple[int, int], ...]

    @property
    def count(self) -> int:
        return len(self.labels)

    def namespace_index(self, name: str) -> int | None:
        lo, hi = 0, len(self.namespaces)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.namespaces[mid] < name:
                lo = mid + 1
            else:
                hi = mid
        return lo if lo < len(self.namespaces) and self.namespaces[lo] == name else None


def distinct_blocks(policies: Iterable[CompiledPolicy]) -> tuple[IPBlock, ...]:
    """Every ipBlock any rule of ``policies`` names, in first-seen order."""
    seen: dict[IPBlock, None] = {}
    for policy in policies:
        for rules in (policy.ingress, policy.egress):
            for rule in rules or ():
                for peer in rule.peers:
                    if peer.kind is PeerKind.IP_BLOCK and peer.ip_block is not None:
                        seen.setdefault(peer.ip_block, None)
    return tuple(seen)


def _block_membership(pods: Sequence[Pod], blocks: Sequence[IPBlock]) -> BoolArray:
    """[pod, block] membership; IPv4 addresses are tested vectorised, IPv6 one by one."""
    member = np.zeros((len(pods), len(blocks)), dtype=np.bool_)
    if not blocks:
        return member
    v4_pod: list[int] = []
    v4_ip: list[int] = []
    for i, pod in enumerate(pods):
        for ip in pod.ips:
            if ip.version == 4:
                v4_pod.append(i)
                v4_ip.append(int(ip))
            else:
                for b, block in enumerate(blocks):
                    if ip_in_block(ip, block):
                        member[i, b] = True
    if not v4_ip:
        return member
    owners = np.asarray(v4_pod, dtype=np.int64)
    values = np.asarray(v4_ip, dtype=np.uint32)

    def inside(net: ipaddress.IPv4Network) -> BoolArray:
        mask = np.uint32(int(net.netmask))
        return np.asarray((values & mask) == np.uint32(int(net.network_address)))

    for b, block in enumerate(blocks):
        if not isinstance(block.cidr, ipaddress.IPv4Network):
            continue
        hit = inside(block.cidr)
        for ex in block.except_:
            if isinstance(ex, ipaddress.IPv4Network):
                hit &= ~inside(ex)
        if hit.any():
            member[owners[hit], b] = True
    return member


def classify(
    inventory: Inventory,
    *,
    blocks: tuple[IPBlock, ...],
    extra_namespaces: Iterable[str] = (),
) -> PodClasses:
    """Group the inventory's pods into classes (see the module docstring)."""
    pods = inventory.pods
    member = _block_membership(pods, blocks)
    names = sorted(
        {n.name for n in inventory.namespaces} | {p.namespace for p in pods} | set(extra_namespaces)
    )
    ns_index = {name: k for k, name in enumerate(names)}
    keys: dict[tuple[object, ...], int] = {}
    raw_of_pod = np.empty(len(pods), dtype=np.int64)
    reps: list[int] = []
    for i, pod in enumerate(pods):
        key = (
            ns_index[pod.namespace],
            pod.labels,
            pod.host_network,
            pod.ports,
            member[i].tobytes() if pod.ips else b"",
        )
        cls = keys.get(key)
        if cls is None:
            cls = len(reps)
            keys[key] = cls
            reps.append(i)
        raw_of_pod[i] = cls
    # Order classes by namespace (stable within a namespace: first-seen, i.e. by pod name).
    order = sorted(range(len(reps)), key=lambda c: (ns_index[pods[reps[c]].namespace], c))
    renumber = np.empty(len(reps), dtype=np.int64)
    renumber[np.asarray(order, dtype=np.int64)] = np.arange(len(reps), dtype=np.int64)
    of_pod = renumber[raw_of_pod] if len(pods) else raw_of_pod
    ordered = [pods[reps[c]] for c in order]
    namespace_of = np.asarray([ns_index[p.namespace] for p in ordered], dtype=np.int64)
    counts = np.bincount(namespace_of, minlength=len(names))
    starts = np.concatenate([[0], np.cumsum(counts)])
    rep_rows = np.asarray([reps[c] for c in order], dtype=np.int64)
    return PodClasses(
        pods=pods,
        of_pod=of_pod,
        weight=np.bincount(of_pod, minlength=len(reps)).astype(np.int64),
        namespace_of=namespace_of,
        labels=tuple(p.labels for p in ordered),
        ports=tuple(p.ports for p in ordered),
        host_network=np.asarray([p.host_network for p in ordered], dtype=np.bool_),
        blocks=blocks,
        in_block=member[rep_rows] if len(reps) else np.zeros((0, len(blocks)), np.bool_),
        namespaces=tuple(names),
        namespace_labels=tuple(inventory.namespace_labels(n) for n in names),
        ns_range=tuple((int(starts[k]), int(starts[k + 1])) for k in range(len(names))),
    )


class ClassIndex:
    """Answers "which classes does this selector match, within these namespaces?" quickly.

    An inverted index from ``key=value`` and ``key`` to class ids narrows each selector to the
    classes named by its most selective positive requirement; only those are tested with
    ``selector_matches`` (the single definition of S17). Results are cached per selector.
    """

    def __init__(self, classes: PodClasses, *, settings: Settings) -> None:
        self.classes = classes
        self.settings = settings
        self._by_pair: dict[tuple[str, str], list[int]] = {}
        self._by_key: dict[str, list[int]] = {}
        for c, labels in enumerate(classes.labels):
            for key, value in labels.items():
                self._by_pair.setdefault((key, value), []).append(c)
                self._by_key.setdefault(key, []).append(c)
        # Pods that can be selected or matched as pod peers (S23).
        self._pod_like = (
            np.ones(classes.count, dtype=np.bool_)
            if settings.host_network_selectable
            else ~classes.host_network
        )
        self._ns_cache: dict[LabelSelector, BoolArray] = {}
        self._cache: dict[tuple[object, LabelSelector | None], IntArray] = {}

    def namespaces_matching(self, selector: LabelSelector) -> BoolArray:
        """Boolean vector over namespaces (S12, S14)."""
        hit = self._ns_cache.get(selector)
        if hit is None:
            hit = np.asarray(
                [selector_matches(selector, lab) for lab in self.classes.namespace_labels],
                dtype=np.bool_,
            )
            self._ns_cache[selector] = hit
        return hit

    def _candidates(self, selector: LabelSelector) -> list[int] | None:
        best: list[int] | None = None
        for key, value in selector.match_labels.items():
            ids = self._by_pair.get((key, value), [])
            if best is None or len(ids) < len(best):
                best = ids
        for req in selector.match_expressions:
            ids_opt: list[int] | None = None
            if req.operator is Operator.EXISTS:
                ids_opt = self._by_key.get(req.key, [])
            elif req.operator is Operator.IN:
                ids_opt = sorted(
                    {c for value in req.values for c in self._by_pair.get((req.key, value), [])}
                )
            if ids_opt is not None and (best is None or len(ids_opt) < len(best)):
                best = ids_opt
        return best

    def pods_in_scope(
        self, *, namespace: str | None, namespace_selector: LabelSelector | None
    ) -> BoolArray:
        """Boolean vector over namespaces: the policy's own one, or those the selector picks."""
        classes = self.classes
        if namespace_selector is not None:
            return self.namespaces_matching(namespace_selector)
        scope = np.zeros(len(classes.namespaces), dtype=np.bool_)
        k = classes.namespace_index(namespace) if namespace is not None else None
        if k is not None:
            scope[k] = True
        return scope

    def select(
        self,
        pod_selector: LabelSelector | None,
        *,
        namespace: str | None = None,
        namespace_selector: LabelSelector | None = None,
    ) -> IntArray:
        """Sorted ids of the pod-like classes in scope that ``pod_selector`` matches (None: all).

        Scope: the namespace ``namespace`` (S01, S11), or the namespaces ``namespace_selector``
        matches (S12, S13).
        """
        scope_key: object = ("ns", namespace) if namespace_selector is None else namespace_selector
        cache_key = (scope_key, pod_selector)
        hit = self._cache.get(cache_key)
        if hit is not None:
            return hit
        classes = self.classes
        ns_mask = self.pods_in_scope(namespace=namespace, namespace_selector=namespace_selector)
        candidates = None if pod_selector is None else self._candidates(pod_selector)
        if candidates is None:
            ranges = [classes.ns_range[k] for k in np.flatnonzero(ns_mask)]
            ids = (
                np.concatenate([np.arange(lo, hi, dtype=np.int64) for lo, hi in ranges])
                if ranges
                else np.zeros(0, dtype=np.int64)
            )
        else:
            ids = np.asarray(candidates, dtype=np.int64)
            ids = ids[ns_mask[classes.namespace_of[ids]]] if len(ids) else ids
        if len(ids):
            ids = ids[self._pod_like[ids]]
        if pod_selector is not None and not pod_selector.is_empty and len(ids):
            labels = classes.labels
            keep = [c for c in ids.tolist() if selector_matches(pod_selector, labels[c])]
            ids = np.asarray(keep, dtype=np.int64)
        self._cache[cache_key] = ids
        return ids
