"""Peers as addresses: which pods a peer matches, its address ranges, and the atoms they cut.

Why this module exists: every peer of every policy denotes a set of addresses (pods a selector
matches, an ipBlock's ranges minus its excepts, the pods where an egress named port resolves to
one number). ``Context`` answers those questions for one inventory's pod side, cached per peer
so that a thousand policies sharing a selector pay once (``_atoms`` then cuts the address
families along those ranges). ``Context.updated`` carries those caches over to the next
inventory, re-testing only the pods that changed, so that an agent's one label change costs
O(peers) instead of O(pods x peers). The module is over 400 lines because the update reads
and writes every private cache of ``Context``; split apart, those would become its interface.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from kubefence.api import Inventory, IPAddress, Labels, LabelSelector, Pod, Protocol
from kubefence.dataplane.nft._intervals import (
    Interval,
    address_interval,
    block_intervals,
    covers,
    family_range,
    merge,
    subtract,
)
from kubefence.dataplane.nft._model import VERSIONS
from kubefence.errors import DataplaneError
from kubefence.semantics import (
    PeerKind,
    PeerMatcher,
    Settings,
    peer_matches_pod,
    resolve_named_port,
    selector_matches,
)

__all__ = ["Context", "Ranges", "address_key"]

Ranges = dict[int, tuple[Interval, ...]]  # IP version -> merged address intervals
_SELECTS_KEPT = 1 << 14  # selectors, and label sets per selector, whose answers are kept


def address_key(address: IPAddress) -> tuple[int, int]:
    return (address.version, int(address))


def _shapes(pods: Sequence[Pod]) -> list[tuple[Pod, ...]]:
    """Pods a pod peer cannot tell apart (same labels and hostNetwork), in order."""
    grouped: dict[tuple[Labels, bool], list[Pod]] = {}
    for pod in pods:
        grouped.setdefault((pod.labels, pod.host_network), []).append(pod)
    return [tuple(group) for group in grouped.values()]


def _runs(points: list[int]) -> tuple[Interval, ...]:
    """``merge`` of the one-address intervals of ``points`` (sorted ints, not tuples)."""
    ordered = sorted(set(points))
    runs: list[Interval] = []
    start = previous = ordered[0]
    for value in ordered[1:]:
        if value != previous + 1:
            runs.append((start, previous))
            start = value
        previous = value
    runs.append((start, previous))
    return tuple(runs)


def _sorted_addresses(found: Sequence[IPAddress]) -> tuple[IPAddress, ...]:
    return tuple(sorted(set(found), key=address_key))


class Context:
    """Look-ups shared by every class: pod addresses, namespace labels, cached peer sets.

    Built from the pods, namespaces, addresses and settings only (``PlanMemo`` reuses it for
    another inventory with the same ones), so it keeps no reference to the inventory."""

    def __init__(
        self,
        inventory: Inventory,
        addresses: Mapping[str, Sequence[IPAddress]],
        settings: Settings,
    ) -> None:
        self.settings = settings
        # What each addressed pod was built from (the pod, the addresses as given), so that
        # ``updated`` finds the changed pods by identity first.
        self._raw: dict[str, tuple[Pod, Sequence[IPAddress]]] = {}
        self.addresses: dict[str, tuple[IPAddress, ...]] = {}
        count = 0
        for pod in inventory.pods:
            found = addresses.get(pod.key, ())
            if found:
                count += 1
                self._raw[pod.key] = (pod, found)
                self.addresses[pod.key] = _sorted_addresses(found)
        self._unique = count == len(self._raw)  # no two addressed pods share a key
        self._index(inventory, {})
        self._owners: tuple[dict[tuple[int, int], str], set[tuple[int, int]], str | None] | None
        self._owners = None
        self._peer_cache: dict[PeerMatcher, dict[int, tuple[Interval, ...]]] = {}
        self._pods_cache: dict[PeerMatcher, tuple[Pod, ...]] = {}
        self._destination_cache: dict[PeerMatcher, tuple[tuple[IPAddress, Pod], ...]] = {}
        self._namespace_cache: dict[LabelSelector, tuple[str, ...]] = {}
        self._named_cache: dict[tuple[PeerMatcher, str, Protocol], dict[int, Ranges]] = {}
        self._selects_cache: dict[LabelSelector, dict[Labels, bool]] = {}

    def _index(self, inventory: Inventory, shapes: Mapping[str, list[tuple[Pod, ...]]]) -> None:
        """The per-namespace views of the addressed pods; ``shapes`` are namespaces' groups
        known to be unchanged (reused as they are)."""
        # ``_raw`` holds the addressed pods in inventory order (one per key).
        self._addressed: tuple[Pod, ...] | None = (
            None if self._unique else tuple(p for p in inventory.pods if p.key in self.addresses)
        )
        self._selectable: tuple[Pod, ...] | None = None
        self._local: tuple[object, tuple[Pod, ...]] | None = None
        self.by_namespace: dict[str, list[Pod]] = {}
        for pod in self.addressed:
            self.by_namespace.setdefault(pod.namespace, []).append(pod)
        # Pods a pod peer cannot tell apart (same namespace, labels, hostNetwork), grouped once.
        self.shapes: dict[str, list[tuple[Pod, ...]]] = {}
        for namespace, pods in self.by_namespace.items():
            known = shapes.get(namespace)
            if known is not None:
                self.shapes[namespace] = known
                continue
            self.shapes[namespace] = _shapes(pods)
        self.labels = {ns: inventory.namespace_labels(ns) for ns in self.by_namespace}

    @property
    def addressed(self) -> tuple[Pod, ...]:
        """The addressed pods, in inventory order (built when first read)."""
        if self._addressed is None:
            self._addressed = tuple(pod for pod, _ in self._raw.values())
        return self._addressed

    @property
    def selectable(self) -> tuple[Pod, ...]:
        """The addressed pods a pod peer can select (hostNetwork ones only if the settings
        say so), in inventory order (built when first read)."""
        if self._selectable is None:
            self._selectable = tuple(
                p
                for p in self.addressed
                if not p.host_network or self.settings.host_network_selectable
            )
        return self._selectable

    def local_pods(self, local: Collection[str]) -> tuple[Pod, ...]:
        """The addressed pods whose keys are in ``local``, in inventory order (remembered
        for the same ``local`` object)."""
        if self._local is None or not (self._local[0] is local or self._local[0] == local):
            if self._unique:
                found = tuple(pod for key, (pod, _) in self._raw.items() if key in local)
            else:
                found = tuple(p for p in self.addressed if p.key in local)
            self._local = (local, found)
        return self._local[1]

    def pod(self, key: str) -> Pod | None:
        """The addressed pod ``key`` (None: no such pod, or it has no address)."""
        entry = self._raw.get(key)
        return None if entry is None else entry[0]

    def pod_of(self) -> dict[tuple[int, int], str]:
        """Which pod each address (``address_key``) belongs to, the first in inventory order
        where hostNetwork pods share one. Raises ``DataplaneError`` when two pods that are not
        hostNetwork share an address (the dispatch maps could not tell them apart)."""
        if self._owners is None:
            owners: dict[tuple[int, int], str] = {}
            shared: set[tuple[int, int]] = set()
            clash: str | None = None
            pod_owner: dict[tuple[int, int], str] = {}
            for pod in self.addressed:
                key = pod.key
                for address in self.addresses[key]:
                    point = address_key(address)
                    if owners.setdefault(point, key) != key:
                        shared.add(point)
                    if pod.host_network:
                        continue
                    other = pod_owner.setdefault(point, key)
                    if other != key and clash is None:
                        clash = (
                            f"pods {other} and {key} were both given address {address}; "
                            "every pod that is not hostNetwork needs its own addresses"
                        )
            self._owners = (owners, shared, clash)
        if self._owners[2] is not None:
            raise DataplaneError(self._owners[2])
        return self._owners[0]

    def _updated_owners(
        self, new: Context, changed: set[str], old_raw: Mapping[str, tuple[Pod, object]]
    ) -> None:
        """``pod_of`` for ``new`` from this one's, when the changed pods (none hostNetwork)
        own their addresses alone before and after; else ``new`` computes it when asked."""
        if self._owners is None or self._owners[2] is not None:
            return
        owners, shared, _ = self._owners
        pods = [(key, old_raw[key][0]) for key in changed if key in old_raw]
        pods += [(key, new._raw[key][0]) for key in changed if key in new._raw]
        if any(pod.host_network for _, pod in pods):
            return
        owners = dict(owners)
        for key in changed:
            for address in self.addresses.get(key, ()):
                point = address_key(address)
                if point in shared or owners.get(point) != key:
                    return
                del owners[point]
        for key in changed:
            for address in new.addresses.get(key, ()):
                point = address_key(address)
                if owners.setdefault(point, key) != key:
                    return  # shared now: a full look says who owns it, or which pods clash
        new._owners = (owners, shared, None)

    def _scan(
        self, inventory: Inventory, addresses: Mapping[str, Sequence[IPAddress]]
    ) -> tuple[dict[str, tuple[Pod, Sequence[IPAddress]]], set[str]] | None:
        """The addressed pods of ``inventory`` and the keys that differ from this context's
        (None: two pods share a key), found by looking at every pod."""
        old_raw = self._raw
        raw: dict[str, tuple[Pod, Sequence[IPAddress]]] = {}
        changed: set[str] = set()
        count = 0
        for pod in inventory.pods:
            key = pod.key
            found = addresses.get(key, ())
            if not found:
                continue
            count += 1
            raw[key] = (pod, found)
            old = old_raw.get(key)
            if old is None or not (
                (old[0] is pod or old[0] == pod)
                and (old[1] is found or tuple(old[1]) == tuple(found))
            ):
                changed.add(key)
        if count != len(raw):
            return None
        if len(raw) - sum(1 for key in changed if key not in old_raw) != len(old_raw):
            changed.update(key for key in old_raw if key not in raw)
        return raw, changed

    def _apply(
        self, addresses: Mapping[str, Sequence[IPAddress]], changes: Mapping[str, Pod | None]
    ) -> tuple[dict[str, tuple[Pod, Sequence[IPAddress]]], set[str]] | None:
        """``_scan`` from the pods ``changes`` names alone (None: a pod gained an address)."""
        old_raw = self._raw
        raw = dict(old_raw)  # keeps inventory order: pods are only replaced or removed
        changed: set[str] = set()
        for key, pod in changes.items():
            found = () if pod is None else addresses.get(key, ())
            old = old_raw.get(key)
            if not found:
                if old is not None:
                    del raw[key]
                    changed.add(key)
                continue
            if old is None:
                return None
            assert pod is not None
            if not (
                (old[0] is pod or old[0] == pod)
                and (old[1] is found or tuple(old[1]) == tuple(found))
            ):
                raw[key] = (pod, found)
                changed.add(key)
        return raw, changed

    def updated(
        self,
        inventory: Inventory,
        addresses: Mapping[str, Sequence[IPAddress]],
        changes: Mapping[str, Pod | None] | None = None,
    ) -> tuple[Context, frozenset[PeerMatcher]] | None:
        """This context for another inventory (same settings), with the peers whose address
        sets or named-port destinations may differ; None when so much changed that a new
        ``Context`` costs the same. Unchanged, it is itself.

        A pod changed when its model or its addresses differ; a namespace whose labels
        changed changes every pod in it. Each cached pod peer is tested against the changed
        pods only, before and after, so a label change costs O(peers), not O(pods x peers).
        A peer none of them enters or leaves (or changes addresses or ports in) keeps its
        caches, its members possibly the earlier models of pods equal in key, addresses and
        ports, which is all a member is read for.

        ``changes`` (see ``PodChanges``) says which pods may differ from this context's
        inventory (key -> the pod now, None when gone) and that no namespace did: the
        changed pods are then not searched for, and the views are updated, not rebuilt, so
        one pod's change costs O(changed pods x peers), not O(pods). A pod that gains an
        address there (its place in inventory order is not known) is found by looking at every pod,
        as without ``changes``; the caches are still carried over."""
        if not self._unique:
            return None  # two pods with one key: only a new context reads them as given
        old_raw = self._raw
        found = None if changes is None else self._apply(addresses, changes)
        if found is None:  # no hint, or a pod gained an address: look at every pod
            changes = None
            found = self._scan(inventory, addresses)
        if found is None:
            return None
        raw, changed = found
        if len(changed) > 64 and len(changed) * 4 > len(raw):
            return None
        if not changed and (
            changes is not None
            or all(inventory.namespace_labels(ns) == labels for ns, labels in self.labels.items())
        ):
            return self, frozenset()
        new = Context.__new__(Context)
        new.settings = settings = self.settings
        new._raw = raw
        new._unique = True  # ``count == len(raw)`` above
        new.addresses = dict(self.addresses)
        touched: set[str] = set()
        for key in changed:
            entry = raw.get(key)
            if entry is None:
                del new.addresses[key]
                touched.add(old_raw[key][0].namespace)
            else:
                new.addresses[key] = _sorted_addresses(entry[1])
                touched.add(entry[0].namespace)
        if changes is None:
            new._index(inventory, {ns: g for ns, g in self.shapes.items() if ns not in touched})
        else:
            self._reindex(new, touched)
        relabelled = (
            set()  # ``changes`` come with the same namespaces
            if changes is not None
            else {
                ns
                for ns, labels in new.labels.items()
                if ns in self.labels and self.labels[ns] != labels
            }
        )
        for ns in relabelled:
            changed.update(p.key for p in self.by_namespace[ns])
            changed.update(p.key for p in new.by_namespace[ns])
        same_namespaces = not relabelled and self.labels.keys() == new.labels.keys()
        new._namespace_cache = dict(self._namespace_cache) if same_namespaces else {}
        new._selects_cache = self._selects_cache  # a pure function: the one dict is shared
        new._owners = None
        self._updated_owners(new, changed, old_raw)
        before = [(key, old_raw[key][0] if key in old_raw else None) for key in changed]
        after = {key: raw[key][0] for key in changed if key in raw}
        affected: set[PeerMatcher] = set()
        new._pods_cache = {}
        for peer, members in self._pods_cache.items():
            entered: list[Pod] = []
            moved = False
            for key, was_pod in before:
                now_pod = after.get(key)
                was = was_pod is not None and peer_matches_pod(
                    peer, was_pod, self.labels[was_pod.namespace], settings=settings
                )
                now = now_pod is not None and peer_matches_pod(
                    peer, now_pod, new.labels[now_pod.namespace], settings=settings
                )
                if now:
                    assert now_pod is not None
                    entered.append(now_pod)
                if was != now or (
                    was
                    and now
                    and (
                        self.addresses[key] != new.addresses[key]
                        or was_pod is None
                        or now_pod is None
                        or was_pod.ports != now_pod.ports
                    )
                ):
                    moved = True
            if moved:
                affected.add(peer)
                kept = tuple(p for p in members if p.key not in changed)
                new._pods_cache[peer] = kept + tuple(entered)
            else:
                new._pods_cache[peer] = members
        # Pod peers keep what their members give. ipBlocks depend on pods only when pod
        # addresses are cut out of them (S15), and the destinations of every pod (named
        # ports through ipBlocks or an absent peer) only on pods' addresses and ports: a
        # relabelled pod (the common change) shifts neither.
        shifted = any(
            was_pod is None
            or key not in after
            or was_pod.host_network != after[key].host_network
            or was_pod.ports != after[key].ports
            or self.addresses[key] != new.addresses[key]
            for key, was_pod in before
        )
        blocks_stay = settings.ipblock_matches_pods or not shifted
        new._peer_cache = {}
        for peer, ranges in self._peer_cache.items():
            if peer.kind is PeerKind.PODS:
                keep = peer not in affected and peer in new._pods_cache
            else:
                keep = peer.kind is PeerKind.ANY or blocks_stay
            if keep:
                new._peer_cache[peer] = ranges
            else:
                affected.add(peer)
        new._destination_cache = {}
        for peer, pairs in self._destination_cache.items():
            if peer not in affected and (peer.kind is PeerKind.PODS or not shifted):
                new._destination_cache[peer] = pairs
            else:
                affected.add(peer)
        new._named_cache = {}
        for named, resolved in self._named_cache.items():
            if named[0] not in affected:
                new._named_cache[named] = resolved
        return new, frozenset(affected)

    def _reindex(self, new: Context, touched: Collection[str]) -> None:
        """``_index`` for ``new``, whose pods are this context's with some replaced or
        removed (in the ``touched`` namespaces only) and whose namespaces are the same."""
        new._addressed = None
        new._selectable = None
        new.by_namespace = dict(self.by_namespace)
        new.shapes = dict(self.shapes)
        new.labels = dict(self.labels)
        raw = new._raw
        for namespace in touched:
            members = [raw[p.key][0] for p in self.by_namespace.get(namespace, ()) if p.key in raw]
            if members:
                new.by_namespace[namespace] = members
                new.shapes[namespace] = _shapes(members)
            else:
                new.by_namespace.pop(namespace, None)
                new.shapes.pop(namespace, None)
                new.labels.pop(namespace, None)
        new._local = None
        if self._local is not None:
            kept = tuple(raw[p.key][0] for p in self._local[1] if p.key in raw)
            new._local = (self._local[0], kept)

    def _candidate_namespaces(self, peer: PeerMatcher) -> Sequence[str]:
        """A pruning pre-check of a pod peer's namespace part (``peer_matches_pod`` decides)."""
        if peer.namespace is not None:
            return (peer.namespace,) if peer.namespace in self.shapes else ()
        if peer.namespace_selector is None:
            return tuple(self.shapes)
        found = self._namespace_cache.get(peer.namespace_selector)
        if found is None:
            found = tuple(
                ns
                for ns in self.shapes
                if selector_matches(peer.namespace_selector, self.labels[ns])
            )
            self._namespace_cache[peer.namespace_selector] = found
        return found

    def matching_pods(self, peer: PeerMatcher) -> tuple[Pod, ...]:
        """Addressed pods a pod peer matches (S11-S14, S23): ``peer_matches_pod`` with its
        namespace part decided once per namespace (``_candidate_namespaces``) and its pod
        part once per (selector, labels) (``_selector_answers``), as namespaces share label sets."""
        cached = self._pods_cache.get(peer)
        if cached is None:
            found: list[Pod] = []
            selector = peer.pod_selector
            answers = None if selector is None else self._selector_answers(selector)
            hidden = not self.settings.host_network_selectable
            for namespace in self._candidate_namespaces(peer):
                for group in self.shapes[namespace]:
                    pod = group[0]
                    if hidden and pod.host_network:
                        continue  # S23: a hostNetwork pod acts as its node's IP, not as a pod
                    if answers is not None:
                        assert selector is not None
                        selected = answers.get(pod.labels)
                        if selected is None:
                            selected = answers[pod.labels] = selector_matches(selector, pod.labels)
                        if not selected:
                            continue
                    found.extend(group)
            cached = tuple(found)
            self._pods_cache[peer] = cached
        return cached

    def _selector_answers(self, selector: LabelSelector) -> dict[Labels, bool]:
        """``selector_matches(selector, labels)`` remembered per labels (a pure function;
        shared by the contexts ``updated`` makes, forgotten past ``_SELECTS_KEPT``)."""
        found = self._selects_cache.get(selector)
        if found is None:
            if len(self._selects_cache) >= _SELECTS_KEPT:
                self._selects_cache.clear()
            found = self._selects_cache[selector] = {}
        elif len(found) >= _SELECTS_KEPT:
            found.clear()
        return found

    def peer_intervals(self, peer: PeerMatcher) -> dict[int, tuple[Interval, ...]]:
        """Address ranges of a peer, per IP version."""
        cached = self._peer_cache.get(peer)
        if cached is not None:
            return cached
        result: dict[int, tuple[Interval, ...]]
        if peer.kind is PeerKind.ANY:
            # S09: an absent or empty from/to is every pod and every address.
            result = {v: (family_range(v),) for v in VERSIONS}
        elif peer.kind is PeerKind.IP_BLOCK:
            # S15: cidr minus every except; pod addresses included unless the setting says not.
            assert peer.ip_block is not None
            intervals = block_intervals(peer.ip_block)
            if not self.settings.ipblock_matches_pods:
                intervals = subtract(
                    intervals,
                    (
                        address_interval(a)
                        for pod in self.addressed
                        if not pod.host_network
                        for a in self.addresses[pod.key]
                    ),
                )
            result = {peer.ip_block.cidr.version: intervals}
        else:
            # S11-S14: the addresses of every pod the selectors match.
            found: dict[int, list[int]] = {v: [] for v in VERSIONS}
            for pod in self.matching_pods(peer):
                for a in self.addresses[pod.key]:
                    found[a.version].append(int(a))
            result = {v: _runs(points) for v, points in found.items() if points}
        self._peer_cache[peer] = result
        return result

    def destinations(self, peer: PeerMatcher) -> tuple[tuple[IPAddress, Pod], ...]:
        """Every (address, pod) the peer matches, for egress named ports (S21): only pods
        policies can select, as a hostNetwork pod acts as its node's address (S23)."""
        cached = self._destination_cache.get(peer)
        if cached is not None:
            return cached
        candidates = self.matching_pods(peer) if peer.kind is PeerKind.PODS else self.selectable
        if peer.kind is PeerKind.IP_BLOCK:
            # The block's ranges already follow S15 and its setting (see peer_intervals), so
            # membership in them is what peer_matches_pod(address=a) answers, only faster.
            assert peer.ip_block is not None
            version = peer.ip_block.cidr.version
            ranges = self.peer_intervals(peer).get(version, ())
            cached = tuple(
                (a, pod)
                for pod in candidates
                for a in self.addresses[pod.key]
                if a.version == version and covers(ranges, int(a))
            )
        else:
            cached = tuple((a, pod) for pod in candidates for a in self.addresses[pod.key])
        self._destination_cache[peer] = cached
        return cached

    def named_destinations(
        self, peer: PeerMatcher, name: str, protocol: Protocol
    ) -> dict[int, Ranges]:
        """Where an egress named port leads through ``peer`` (S21): resolved number -> the
        addresses of the destination pods that declare ``name`` with that number, sorted."""
        key = (peer, name, protocol)
        cached = self._named_cache.get(key)
        if cached is None:
            by_value: dict[int, dict[int, list[Interval]]] = {}
            for address, pod in self.destinations(peer):
                value = resolve_named_port(name, protocol, pod.ports)
                if value is not None:
                    found = by_value.setdefault(value, {v: [] for v in VERSIONS})
                    found[address.version].append(address_interval(address))
            cached = {
                value: {v: merge(ivs) for v, ivs in found.items() if ivs}
                for value, found in sorted(by_value.items())
            }
            self._named_cache[key] = cached
        return cached
