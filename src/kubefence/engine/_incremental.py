"""A reachability result that follows changes: policies, pods and namespace labels, one at a time.

Why this module exists: a controller or an editor that re-checks a cluster after each change
should not recompute every pair. ``ReachabilityModel`` keeps, for one port, the pod-level
egress and ingress verdicts and the per-rule vectors behind them, and after a change recomputes
only what the change can affect:

| change                     | recomputed                                                     |
|----------------------------|----------------------------------------------------------------|
| add/remove/replace policy  | egress rows / ingress rows of the pods it selects (old or new), |
|                            | only for the directions the old or new policy isolates (S03)    |
| add pod                    | its row and column, and each cached rule vector at that pod     |
| remove pod                 | nothing: its slot is retired and left out of results            |
| namespace labels           | rule vectors with namespace selectors at that namespace's pods, |
|                            | then the rows of pods whose policies hold a changed rule        |

Verdicts come from the same primitives as the reference (``selects_pod``, ``peer_matches_pod``,
``port_matches``); the initial build takes its vectors from ``ReachabilityAnalysis``. State is
pod-level (two pods x pods boolean matrices: 200 MB at 10,000 pods), so that a change never has
to split or merge pod classes. An inventory with admin tiers is refused (``InputError``); the
whole-cluster engine (``ReachabilityAnalysis``) evaluates them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from kubefence.api import (
    METADATA_NAME_LABEL,
    Inventory,
    Labels,
    NetworkPolicy,
    Pod,
    Protocol,
    labels_of_namespace,
)
from kubefence.engine._compute import ReachabilityAnalysis, node_overrides
from kubefence.engine._matrix import Matrix
from kubefence.errors import InputError
from kubefence.semantics import (
    DEFAULT_SETTINGS,
    CompiledPolicy,
    CompiledRule,
    PeerKind,
    PeerMatcher,
    Settings,
    compile_policy,
    parse_port,
    peer_matches_pod,
    port_matches,
    require_no_tiers,
    resolve_named_port,
    selector_matches,
    selects_pod,
)

__all__ = ["ReachabilityModel"]

BoolArray = npt.NDArray[np.bool_]


class ReachabilityModel:
    """allowed[src, dst] on one port, kept up to date under single changes (see module doc)."""

    def __init__(
        self,
        inventory: Inventory,
        *,
        port: int | str,
        protocol: Protocol = Protocol.TCP,
        settings: Settings = DEFAULT_SETTINGS,
    ) -> None:
        # Tiers' first-match order does not decompose into per-pod rows the way NetworkPolicy
        # unions do; say so rather than answer without them (``ReachabilityAnalysis`` has them).
        require_no_tiers(inventory, by="ReachabilityModel (incremental engine)")
        self.port = parse_port(port)
        self.protocol = protocol
        self.settings = settings
        self._ns_labels: dict[str, Mapping[str, str]] = {
            n.name: n.labels for n in inventory.namespaces
        }
        self._pods: list[Pod | None] = list(inventory.pods)
        self._slot: dict[str, int] = {p.key: i for i, p in enumerate(inventory.pods)}
        self._by_ns: dict[str, list[int]] = {}
        for i, pod in enumerate(inventory.pods):
            self._by_ns.setdefault(pod.namespace, []).append(i)
        capacity = max(16, len(self._pods) + len(self._pods) // 8)
        self._alive = np.zeros(capacity, dtype=np.bool_)
        self._alive[: len(self._pods)] = True
        self._policies: dict[str, CompiledPolicy] = {}
        self._ns_policies: dict[str, dict[str, CompiledPolicy]] = {}
        self._selected: dict[str, BoolArray] = {}
        self._peer: dict[int, BoolArray] = {}  # id(rule) -> pods matched by its peers
        self._portok: dict[int, BoolArray] = {}  # id(rule) -> destinations its ports match
        self._egress = np.ones((capacity, capacity), dtype=np.bool_)  # [src, dst]
        self._ingress = np.ones((capacity, capacity), dtype=np.bool_)  # [dst, src]
        self._build(inventory)

    # --- construction ---------------------------------------------------------------------

    def _build(self, inventory: Inventory) -> None:
        analysis = ReachabilityAnalysis(inventory, settings=self.settings)
        of_pod = analysis.classes.of_pod
        n = len(self._pods)
        effective = analysis.effective_ports(self.port, self.protocol)
        reachable = effective >= 0
        for policy in analysis.policies:
            self._policies[policy.source.key] = policy
            self._ns_policies.setdefault(policy.namespace, {})[policy.source.key] = policy
            self._selected[policy.source.key] = self._select(policy)
            for rule in _rules(policy):
                self._peer[id(rule)] = self._padded(analysis.rule_peers(rule)[of_pod], n)
                ports = analysis.port_vector(
                    rule.ports, effective=effective, protocol=self.protocol
                )
                self._portok[id(rule)] = self._padded((ports & reachable)[of_pod], n)
        for i in range(n):
            self._egress_row(i)
            self._ingress_row(i)

    def _padded(self, vector: BoolArray, n: int) -> BoolArray:
        out = np.zeros(len(self._alive), dtype=np.bool_)
        out[:n] = vector
        return out

    # --- per-pod primitives -----------------------------------------------------------------

    def _labels_of(self, namespace: str) -> Mapping[str, str]:
        return labels_of_namespace(self._ns_labels, namespace)

    def _effective(self, pod: Pod) -> int | None:
        if isinstance(self.port, int):
            return self.port
        return resolve_named_port(self.port, self.protocol, pod.ports)

    def _port_at(self, rule: CompiledRule, pod: Pod) -> bool:
        """Do the rule's ports match a connection to ``pod`` (S18-S21)?"""
        number = self._effective(pod)
        if number is None:
            return False
        selectable = not pod.host_network or self.settings.host_network_selectable
        ports = pod.ports if selectable else None  # S23: named ports never match a node IP
        return any(port_matches(m, number, self.protocol, ports) for m in rule.ports)

    def _peer_at(self, rule: CompiledRule, pod: Pod) -> bool:
        labels = self._labels_of(pod.namespace)
        return any(peer_matches_pod(p, pod, labels, settings=self.settings) for p in rule.peers)

    def _select(self, policy: CompiledPolicy) -> BoolArray:
        out = np.zeros(len(self._alive), dtype=np.bool_)
        for i in self._by_ns.get(policy.namespace, ()):
            pod = self._pods[i]
            if pod is not None and selects_pod(policy, pod, settings=self.settings):
                out[i] = True
        return out

    def _candidates(self, peer: PeerMatcher) -> list[int]:
        """Slots that could match ``peer``: its namespace(s) for pod peers, else all."""
        if peer.kind is not PeerKind.PODS:
            return [i for i, pod in enumerate(self._pods) if pod is not None]
        if peer.namespace is not None:
            return list(self._by_ns.get(peer.namespace, ()))
        assert peer.namespace_selector is not None
        return [
            i
            for ns, slots in self._by_ns.items()
            if selector_matches(peer.namespace_selector, self._labels_of(ns))
            for i in slots
        ]

    def _rule_vectors(self, rule: CompiledRule) -> None:
        peer = np.zeros(len(self._alive), dtype=np.bool_)
        for matcher in rule.peers:
            for i in self._candidates(matcher):
                pod = self._pods[i]
                if pod is not None and not peer[i]:
                    labels = self._labels_of(pod.namespace)
                    peer[i] = peer_matches_pod(matcher, pod, labels, settings=self.settings)
        portok = np.zeros(len(self._alive), dtype=np.bool_)
        memo: dict[tuple[object, ...], bool] = {}  # pods of one template share the answer
        for i, pod in enumerate(self._pods):
            if pod is not None:
                key = (pod.ports, pod.host_network)
                value = memo.get(key)
                if value is None:
                    value = memo[key] = self._port_at(rule, pod)
                portok[i] = value
        self._peer[id(rule)] = peer
        self._portok[id(rule)] = portok

    # --- rows ---------------------------------------------------------------------------------

    def _selecting(self, i: int, *, ingress: bool) -> list[CompiledPolicy]:
        pod = self._pods[i]
        assert pod is not None
        found = []
        for policy in self._policies_in(pod.namespace):
            rules = policy.ingress if ingress else policy.egress
            if rules is not None and self._selected[policy.source.key][i]:
                found.append(policy)
        return found

    def _policies_in(self, namespace: str) -> list[CompiledPolicy]:
        return list(self._ns_policies.get(namespace, {}).values())

    def _egress_row(self, i: int) -> None:
        """egress_ok[i, :]: not isolated (S03), or OR of rule peers AND ports (S04, S10)."""
        policies = self._selecting(i, ingress=False)
        if not policies:
            self._egress[i, :] = True
            return
        row = np.zeros(len(self._alive), dtype=np.bool_)
        for policy in policies:
            for rule in policy.egress or ():
                row |= self._peer[id(rule)] & self._portok[id(rule)]
        self._egress[i, :] = row

    def _ingress_row(self, i: int) -> None:
        """ingress_ok[:, i] (stored as a row): the port is judged at ``i``, the destination."""
        policies = self._selecting(i, ingress=True)
        if not policies:
            self._ingress[i, :] = True
            return
        row = np.zeros(len(self._alive), dtype=np.bool_)
        for policy in policies:
            for rule in policy.ingress or ():
                if self._portok[id(rule)][i]:
                    row |= self._peer[id(rule)]
        self._ingress[i, :] = row

    # --- changes ------------------------------------------------------------------------------

    def add_policy(self, policy: NetworkPolicy) -> None:
        """Add a policy (InputError if one with that namespace/name exists)."""
        if policy.key in self._policies:
            raise InputError(f"policy {policy.key} already exists")
        self._put(None, compile_policy(policy))

    def remove_policy(self, key: str) -> None:
        """Remove the policy ``namespace/name`` (InputError if absent)."""
        old = self._policies.get(key)
        if old is None:
            raise InputError(f"no policy {key!r}")
        self._put(old, None)

    def replace_policy(self, policy: NetworkPolicy) -> None:
        """Replace the policy with the same namespace/name (or add it)."""
        self._put(self._policies.get(policy.key), compile_policy(policy))

    def _put(self, old: CompiledPolicy | None, new: CompiledPolicy | None) -> None:
        touched = np.zeros(len(self._alive), dtype=np.bool_)
        ingress = egress = False
        if old is not None:
            key = old.source.key
            touched |= self._selected.pop(key)
            del self._policies[key]
            del self._ns_policies[old.namespace][key]
            for rule in _rules(old):
                self._peer.pop(id(rule), None)
                self._portok.pop(id(rule), None)
            ingress |= old.ingress is not None
            egress |= old.egress is not None
        if new is not None:
            key = new.source.key
            selected = self._select(new)
            touched |= selected
            self._policies[key] = new
            self._ns_policies.setdefault(new.namespace, {})[key] = new
            self._selected[key] = selected
            for rule in _rules(new):
                self._rule_vectors(rule)
            ingress |= new.ingress is not None
            egress |= new.egress is not None
        for i in np.flatnonzero(touched & self._alive):
            if egress:
                self._egress_row(int(i))
            if ingress:
                self._ingress_row(int(i))

    def set_namespace_labels(self, name: str, labels: Mapping[str, str]) -> None:
        """Relabel a namespace (``kubernetes.io/metadata.name`` is kept, S16)."""
        self._ns_labels[name] = Labels({**labels, METADATA_NAME_LABEL: name})
        pods = [i for i in self._by_ns.get(name, ()) if self._pods[i] is not None]
        rows: set[int] = set()
        for policy in self._policies.values():
            changed = False
            for rule in _rules(policy):
                if not any(p.kind is PeerKind.PODS and p.namespace_selector for p in rule.peers):
                    continue
                vector = self._peer[id(rule)]
                for i in pods:
                    pod = self._pods[i]
                    assert pod is not None
                    value = self._peer_at(rule, pod)
                    if value != vector[i]:
                        vector[i] = value
                        changed = True
            if changed:
                rows.update(int(i) for i in np.flatnonzero(self._selected[policy.source.key]))
        for i in sorted(rows):
            self._egress_row(i)
            self._ingress_row(i)

    def add_pod(self, pod: Pod) -> None:
        """Add a pod (InputError if the name is taken); its namespace may be new."""
        if pod.key in self._slot:
            raise InputError(f"pod {pod.key} already exists")
        i = len(self._pods)
        if i >= len(self._alive):
            self._grow()
        self._pods.append(pod)
        self._slot[pod.key] = i
        self._by_ns.setdefault(pod.namespace, []).append(i)
        self._alive[i] = True
        for policy in self._policies.values():
            if policy.namespace == pod.namespace and selects_pod(
                policy, pod, settings=self.settings
            ):
                self._selected[policy.source.key][i] = True
            for rule in _rules(policy):
                self._peer[id(rule)][i] = self._peer_at(rule, pod)
                self._portok[id(rule)][i] = self._port_at(rule, pod)
        self._egress_row(i)
        self._ingress_row(i)
        # Its column: who may send to it (egress of others) and whom it may... be reached by.
        self._egress[:, i] = True
        self._ingress[:, i] = True
        for policy in self._policies.values():
            selected = self._selected[policy.source.key]
            if policy.egress is not None:
                self._egress[selected, i] = False
            if policy.ingress is not None:
                self._ingress[selected, i] = False
        for policy in self._policies.values():
            selected = self._selected[policy.source.key]
            for rule in policy.egress or ():
                if self._peer[id(rule)][i] and self._portok[id(rule)][i]:
                    self._egress[selected, i] = True
            for rule in policy.ingress or ():
                if self._peer[id(rule)][i]:
                    self._ingress[selected & self._portok[id(rule)], i] = True

    def remove_pod(self, key: str) -> None:
        """Remove the pod ``namespace/name`` (InputError if absent)."""
        i = self._slot.pop(key, None)
        if i is None:
            raise InputError(f"no pod {key!r}")
        pod = self._pods[i]
        assert pod is not None
        self._pods[i] = None
        self._alive[i] = False
        self._by_ns[pod.namespace].remove(i)
        for selected in self._selected.values():
            selected[i] = False

    def _grow(self) -> None:
        old = len(self._alive)
        new = old * 2
        pad = np.zeros(new - old, dtype=np.bool_)
        self._alive = np.concatenate([self._alive, pad])
        self._selected = {k: np.concatenate([v, pad]) for k, v in self._selected.items()}
        self._peer = {k: np.concatenate([v, pad]) for k, v in self._peer.items()}
        self._portok = {k: np.concatenate([v, pad]) for k, v in self._portok.items()}
        for name in ("_egress", "_ingress"):
            grown = np.ones((new, new), dtype=np.bool_)
            grown[:old, :old] = getattr(self, name)
            setattr(self, name, grown)

    # --- results ------------------------------------------------------------------------------

    def _order(self) -> list[int]:
        live = [(p.namespace, p.name, i) for i, p in enumerate(self._pods) if p is not None]
        return [i for _, _, i in sorted(live)]

    def matrix(self) -> Matrix:
        """The current result, as ``compute_matrix`` would give it for the current objects."""
        order = np.asarray(self._order(), dtype=np.int64)
        pods = [self._pods[i] for i in order]
        allowed = self._egress[np.ix_(order, order)] & self._ingress[np.ix_(order, order)].T
        reachable = np.asarray(
            [p is not None and self._effective(p) is not None for p in pods], dtype=np.bool_
        )
        allowed[:, ~reachable] = False
        names = sorted(
            {p.namespace for p in pods if p is not None}
            | set(self._ns_labels)
            | {p.namespace for p in self._policies.values()}
        )
        position = {n: k for k, n in enumerate(names)}
        overrides = node_overrides(pods, self.settings, reachable=reachable)
        return Matrix(
            port=str(self.port),
            protocol=self.protocol,
            endpoints=tuple(p.key for p in pods if p is not None),
            class_of=np.arange(len(pods), dtype=np.int64),
            class_allowed=allowed,
            endpoint_namespace=np.asarray(
                [position[p.namespace] for p in pods if p is not None], dtype=np.int64
            ),
            namespaces=tuple(names),
            self_allowed=self.settings.self_traffic_allowed,
            overrides=overrides,
        )


def _rules(policy: CompiledPolicy) -> tuple[CompiledRule, ...]:
    return (policy.ingress or ()) + (policy.egress or ())
