"""Pods reduced to equivalence classes, and label selectors evaluated once per class.

Why this module exists: a cluster of 100,000 pods made by Deployments has far fewer distinct
pods as far as NetworkPolicy can tell: two pods of one namespace with the same labels, the same
container ports, the same hostNetwork flag and the same membership in every ipBlock of every
policy are indistinguishable to every selector, ipBlock and named port. The engine computes on
those classes and expands to pods only when asked. Classes are ordered by namespace so that the
classes of one namespace form one contiguous range (a numpy slice, not a fancy index).

Admin tiers (ClusterNetworkPolicy) tell pods apart by the same things (namespace labels, pod
labels, hostNetwork, container ports for named ports, addresses: their ``networks`` are passed
in ``blocks``) and one more: a ``nodes`` peer matches a hostNetwork pod by its node's labels, so
with ``split_host_nodes`` hostNetwork pods of different nodes are different classes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kubefence.api import (
    ContainerPort,
    Inventory,
    IPBlock,
    Labels,
    LabelSelector,
    Operator,
    Pod,
)
from kubefence.engine._blocks import block_classes, block_membership, membership_keys
from kubefence.semantics import Settings, selector_matches

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
    block_classes: tuple[IntArray, ...]  # per block: classes with an IP inside it (sorted)
    namespaces: tuple[str, ...]
    namespace_labels: tuple[Mapping[str, str], ...]
    ns_range: tuple[tuple[int, int], ...]
    # name -> index in ``namespaces``; a field, because hashing the names on every lookup (a
    # memo keyed by the tuple) cost more than the lookups themselves.
    namespace_position: Mapping[str, int]

    @property
    def count(self) -> int:
        return len(self.labels)

    def namespace_index(self, name: str) -> int | None:
        return self.namespace_position.get(name)


def classify(
    inventory: Inventory,
    *,
    blocks: tuple[IPBlock, ...],
    extra_namespaces: Iterable[str] = (),
    split_host_nodes: bool = False,
) -> PodClasses:
    """Group the inventory's pods into classes (see the module docstring)."""
    pods = inventory.pods
    pair_pod, pair_block = block_membership(pods, blocks)
    member = membership_keys(len(pods), pair_pod, pair_block)
    names = sorted(
        {n.name for n in inventory.namespaces} | {p.namespace for p in pods} | set(extra_namespaces)
    )
    ns_index = {name: k for k, name in enumerate(names)}
    keys: dict[tuple[object, ...], int] = {}
    raw: list[int] = []  # class per pod, first-seen numbering (a list: no numpy store per pod)
    reps: list[int] = []
    for i, pod in enumerate(pods):
        key = (
            ns_index[pod.namespace],
            pod.labels,
            pod.host_network,
            pod.ports,
            member[i],
            pod.node if split_host_nodes and pod.host_network else None,
        )
        cls = keys.get(key)
        if cls is None:
            cls = len(reps)
            keys[key] = cls
            reps.append(i)
        raw.append(cls)
    raw_of_pod = np.asarray(raw, dtype=np.int64)
    # Order classes by namespace (stable within a namespace: first-seen, i.e. by pod name).
    order = sorted(range(len(reps)), key=lambda c: (ns_index[pods[reps[c]].namespace], c))
    renumber = np.empty(len(reps), dtype=np.int64)
    renumber[np.asarray(order, dtype=np.int64)] = np.arange(len(reps), dtype=np.int64)
    of_pod = renumber[raw_of_pod] if len(pods) else raw_of_pod
    ordered = [pods[reps[c]] for c in order]
    namespace_of = np.asarray([ns_index[p.namespace] for p in ordered], dtype=np.int64)
    counts = np.bincount(namespace_of, minlength=len(names))
    starts = np.concatenate([[0], np.cumsum(counts)])
    return PodClasses(
        pods=pods,
        of_pod=of_pod,
        weight=np.bincount(of_pod, minlength=len(reps)).astype(np.int64),
        namespace_of=namespace_of,
        labels=tuple(p.labels for p in ordered),
        ports=tuple(p.ports for p in ordered),
        host_network=np.asarray([p.host_network for p in ordered], dtype=np.bool_),
        blocks=blocks,
        block_classes=block_classes(pair_pod, pair_block, of_pod, len(blocks), len(reps)),
        namespaces=tuple(names),
        namespace_labels=tuple(inventory.namespace_labels(n) for n in names),
        ns_range=tuple((int(starts[k]), int(starts[k + 1])) for k in range(len(names))),
        namespace_position=ns_index,
    )


_SMALL_SCOPE = 64  # below this many classes in scope, test each class directly


class ClassIndex:
    """Answers "which classes does this selector match, within these namespaces?" quickly.

    Small scopes (a policy's own namespace) are tested class by class with ``selector_matches``,
    the single definition of S17, once per distinct label set and selector. Wide scopes
    (namespace selectors) use an inverted index from ``key=value`` and ``key`` to sorted class
    ids and evaluate S17 as set algebra: matchLabels, In and Exists intersect; NotIn and
    DoesNotExist subtract. Results are cached per selector.
    """

    def __init__(self, classes: PodClasses, *, settings: Settings) -> None:
        self.classes = classes
        self.settings = settings
        by_pair: dict[tuple[str, str], list[int]] = {}
        by_key: dict[str, list[int]] = {}
        for c, labels in enumerate(classes.labels):
            for key, value in labels.items():
                by_pair.setdefault((key, value), []).append(c)
                by_key.setdefault(key, []).append(c)
        self._by_pair = {k: np.asarray(v, dtype=np.int64) for k, v in by_pair.items()}
        # Classes of many namespaces share few label sets (Deployments): a selector is tested
        # once per distinct label set (``selector_matches``, S17) and its verdicts are reused.
        distinct: dict[Labels, int] = {}
        self._label_of: list[int] = [
            distinct.setdefault(labels, len(distinct)) for labels in classes.labels
        ]
        # Plain dicts: the same labels, read faster by ``selector_matches`` than ``Labels``.
        self._distinct_labels = tuple(dict(labels) for labels in distinct)
        self._verdicts: dict[LabelSelector, dict[int, bool]] = {}
        self._namespace_labels = tuple(dict(lab) for lab in classes.namespace_labels)
        self._by_key = {k: np.asarray(v, dtype=np.int64) for k, v in by_key.items()}
        self._none = np.zeros(0, dtype=np.int64)
        # Pods that can be selected or matched as pod peers (S23).
        self.pod_like: BoolArray = (
            np.ones(classes.count, dtype=np.bool_)
            if settings.host_network_selectable
            else ~classes.host_network
        )
        self.pod_like_list: list[bool] = self.pod_like.tolist()
        self._ns_sizes = np.asarray([hi - lo for lo, hi in classes.ns_range], dtype=np.int64)
        self._ns_cache: dict[LabelSelector, BoolArray] = {}
        self._cache: dict[tuple[object, LabelSelector | None], IntArray] = {}

    def _matching(self, selector: LabelSelector, classes: Iterable[int]) -> Iterator[bool]:
        """Does ``selector`` match each of ``classes``? (S17, memoised per distinct label set)"""
        verdicts = self._verdicts.get(selector)
        if verdicts is None:
            verdicts = self._verdicts[selector] = {}
        label_of, distinct = self._label_of, self._distinct_labels
        for c in classes:
            lid = label_of[c]
            hit = verdicts.get(lid)
            if hit is None:
                hit = verdicts[lid] = selector_matches(selector, distinct[lid])
            yield hit

    def namespaces_matching(self, selector: LabelSelector) -> BoolArray:
        """Boolean vector over namespaces (S12, S14)."""
        hit = self._ns_cache.get(selector)
        if hit is None:
            hit = np.asarray(
                [selector_matches(selector, lab) for lab in self._namespace_labels],
                dtype=np.bool_,
            )
            self._ns_cache[selector] = hit
        return hit

    def _pairs(self, key: str, values: Iterable[str]) -> IntArray:
        found = [self._by_pair[(key, v)] for v in values if (key, v) in self._by_pair]
        if not found:
            return self._none
        return found[0] if len(found) == 1 else np.unique(np.concatenate(found))

    def _algebra(self, selector: LabelSelector) -> IntArray | None:
        """Sorted class ids matching ``selector`` anywhere, or None when it has no positive
        requirement (then the caller scans its scope)."""
        positive: list[IntArray] = []
        negative: list[IntArray] = []
        for key, value in selector.match_labels.items():
            positive.append(self._by_pair.get((key, value), self._none))
        for req in selector.match_expressions:
            if req.operator is Operator.IN:
                positive.append(self._pairs(req.key, req.values))
            elif req.operator is Operator.NOT_IN:
                negative.append(self._pairs(req.key, req.values))
            elif req.operator is Operator.EXISTS:
                positive.append(self._by_key.get(req.key, self._none))
            else:
                negative.append(self._by_key.get(req.key, self._none))
        if not positive:
            return None
        positive.sort(key=len)
        ids = positive[0]
        for other in positive[1:]:
            if not len(ids):
                break
            ids = np.intersect1d(ids, other, assume_unique=True)
        for other in negative:
            if len(ids) and len(other):
                ids = np.setdiff1d(ids, other, assume_unique=True)
        return ids

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

    def _select_in_namespace(
        self, pod_selector: LabelSelector | None, namespace: str | None, *, everything: bool
    ) -> IntArray:
        """The common case (S01, S11): one namespace, a handful of classes, tested directly."""
        k = self.classes.namespace_index(namespace) if namespace is not None else None
        if k is None:
            return self._none
        lo, hi = self.classes.ns_range[k]
        pod_like = self.pod_like_list
        if everything:
            return np.asarray([c for c in range(lo, hi) if pod_like[c]], dtype=np.int64)
        assert pod_selector is not None
        matching = self._matching(pod_selector, range(lo, hi))
        keep = [c for c, hit in zip(range(lo, hi), matching, strict=True) if hit and pod_like[c]]
        return np.asarray(keep, dtype=np.int64)

    def selected_in_namespace(self, pod_selector: LabelSelector, namespace: str) -> BoolArray:
        """A policy's targets (S01, S23) as a boolean vector over its namespace's classes.

        Not cached: policy selectors rarely repeat, and this is the hottest loop of a large
        analysis, so it avoids the cache key and the id arrays of ``select``.
        """
        k = self.classes.namespace_index(namespace)
        if k is None:
            return np.zeros(0, dtype=np.bool_)
        lo, hi = self.classes.ns_range[k]
        if pod_selector.is_empty:
            return self.pod_like[lo:hi].copy()
        found = np.fromiter(self._matching(pod_selector, range(lo, hi)), np.bool_, count=hi - lo)
        return found & self.pod_like[lo:hi]

    def selected_ids(self, pod_selector: LabelSelector, namespace: str) -> list[int]:
        """``selected_in_namespace`` as the sorted ids of the selected classes (whole-cluster
        ids, not offsets in the namespace), a plain list.

        The preparation of a large analysis asks this once per policy (68,000 times at
        100,000 pods) for a handful of classes each: a list comprehension over the memoised
        verdicts costs a fraction of the numpy calls a boolean vector needs.
        """
        k = self.classes.namespace_position.get(namespace)
        if k is None:
            return []
        lo, hi = self.classes.ns_range[k]
        pod_like = self.pod_like_list
        if not pod_selector.match_labels and not pod_selector.match_expressions:
            return [c for c in range(lo, hi) if pod_like[c]]
        verdicts = self._verdicts.get(pod_selector)
        if verdicts is None:
            verdicts = self._verdicts[pod_selector] = {}
        label_of, distinct = self._label_of, self._distinct_labels
        keep: list[int] = []
        for c in range(lo, hi):
            lid = label_of[c]
            hit = verdicts.get(lid)
            if hit is None:
                hit = verdicts[lid] = selector_matches(pod_selector, distinct[lid])
            if hit and pod_like[c]:
                keep.append(c)
        return keep

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
        everything = pod_selector is None or pod_selector.is_empty
        if namespace_selector is None:
            ids = self._select_in_namespace(pod_selector, namespace, everything=everything)
            self._cache[cache_key] = ids
            return ids
        ns_mask = self.pods_in_scope(namespace=namespace, namespace_selector=namespace_selector)
        small = int(self._ns_sizes[ns_mask].sum()) <= _SMALL_SCOPE
        algebra = None if everything or small else self._algebra(pod_selector)  # type: ignore[arg-type]
        if algebra is not None:
            ids = algebra[ns_mask[classes.namespace_of[algebra]]] if len(algebra) else algebra
        else:
            ranges = [classes.ns_range[k] for k in np.flatnonzero(ns_mask)]
            ids = (
                np.concatenate([np.arange(lo, hi, dtype=np.int64) for lo, hi in ranges])
                if ranges
                else self._none
            )
            if not everything and len(ids):
                assert pod_selector is not None
                listed = ids.tolist()
                hits = np.fromiter(self._matching(pod_selector, listed), np.bool_, len(listed))
                ids = ids[hits]
        if len(ids):
            ids = ids[self.pod_like[ids]]
        self._cache[cache_key] = ids
        return ids
