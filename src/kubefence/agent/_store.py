"""The agent's copy of the cluster: API objects parsed once each, assembled into an Inventory.

Why this module exists: the agent sees objects one change at a time, but the planner reads a
whole ``Inventory``. Re-validating fifteen thousand dicts after every change would cost most of
the time budget, so each object is parsed alone (through ``kubefence.sources.objects``, the
validation every other input gets) when it changes, kept as its model, and the inventory is put
together from the models; a kind whose objects did not change reuses its sorted tuple.
Pods are many and change most: the store keeps their views (live pods in order, addresses,
this node's, the pods the table reads) up to date one pod at a time and tells the planner
which pods changed (``PodChanges``), so that one change costs O(changed pods), not O(pods).
Nodes (for the tiers' ``nodes`` peer) are kept apart, reduced to what that peer reads
(``_nodes``), so that kubelet heartbeats are no change.
The module is over 400 lines because those views are updated wherever a model changes
(``_keep``, ``remove``) and read by ``snapshot``: split apart, they would become an interface.

An object the agent cannot compile (the API server accepted it, kubefence's validation or this
node refuses it, e.g. a protocol the kernel cannot serve) never opens anything: a policy is
replaced by a policy with the same pod selector (or every pod of its namespace when even that
cannot be read) and no rules, so the pods it was meant to select stay isolated in the
directions it names (both when unknown). A pod or namespace that cannot be read as a whole
is kept as what can be read of it (name, labels, placement, addresses; a pod loses its
container ports, so named ports do not resolve on it): its pod stays selected, and isolated,
by the policies that select it. Only when even that cannot be read is it left out. Each case
is reported.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from kubefence.agent._decode import pod_record
from kubefence.agent._nodes import NodeTable, parse_node, reduced
from kubefence.agent._relevant import Relevance
from kubefence.agent._sorted import SortedPods
from kubefence.api import (
    ClusterNetworkPolicy,
    Inventory,
    IPAddress,
    Namespace,
    NetworkPolicy,
    Pod,
    Protocol,
)
from kubefence.dataplane.nft import PodChanges
from kubefence.errors import ValidationError
from kubefence.semantics import DEFAULT_SETTINGS, Settings
from kubefence.sources.objects import inventory_from_objects

__all__ = ["ADMIN_KINDS", "KINDS", "Problem", "Snapshot", "Store"]

Obj = dict[str, Any]
Model = Namespace | Pod | NetworkPolicy | ClusterNetworkPolicy

ADMIN_KINDS = ("ClusterNetworkPolicy", "AdminNetworkPolicy", "BaselineAdminNetworkPolicy")
KINDS = ("Namespace", "Pod", "NetworkPolicy", *ADMIN_KINDS)
_API_VERSIONS = {
    "Namespace": "v1",
    "Pod": "v1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "ClusterNetworkPolicy": "policy.networking.k8s.io/v1alpha2",
    "AdminNetworkPolicy": "policy.networking.k8s.io/v1alpha1",
    "BaselineAdminNetworkPolicy": "policy.networking.k8s.io/v1alpha1",
}
_GONE_PHASES = ("Succeeded", "Failed")  # terminated pods hold no address (as kube-proxy reads)


@dataclass(frozen=True, slots=True)
class Problem:
    """Why one object could not be compiled as it is (``key`` is ``kind ns/name``)."""

    kind: str
    key: str
    message: str
    obj: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one reconcile plans from: the inventory, this node's pods, their addresses."""

    inventory: Inventory  # the pods and policies that can change this node's table
    local: frozenset[str]
    addresses: Mapping[str, tuple[IPAddress, ...]]
    problems: tuple[Problem, ...]
    version: int  # bumps with every change the store took
    policies_total: int = 0  # in the cluster (the inventory holds only those that matter here)
    pods_total: int = 0  # likewise (see ``_relevant``)
    # The pods that changed since the previous snapshot, for the planner (None: unknown).
    changes: PodChanges | None = None


def _manifest(kind: str, obj: Mapping[str, Any]) -> Obj:
    metadata = dict(obj.get("metadata") or {})
    for name in ("managedFields",):
        metadata.pop(name, None)
    manifest: Obj = {"apiVersion": _API_VERSIONS[kind], "kind": kind, "metadata": metadata}
    for part in ("spec", "status"):
        if part in obj:
            manifest[part] = obj[part]
    return manifest


def _message(exc: ValidationError) -> str:
    return "; ".join(str(p) for p in exc.problems)[:1000] if exc.problems else str(exc)


def _unsupported(policy: NetworkPolicy, unsupported: Collection[Protocol]) -> str | None:
    for direction, rules in (("ingress", policy.ingress), ("egress", policy.egress)):
        for index, rule in enumerate(rules):
            for port in rule.ports:
                if port.protocol in unsupported:
                    return (
                        f"spec.{direction}[{index}].ports: protocol {port.protocol.value} is not "
                        "supported on this node"
                    )
    return None


def _isolating_stand_in(obj: Mapping[str, Any]) -> NetworkPolicy:
    """A rule-less policy selecting what ``obj`` selects (all of its namespace if unreadable),
    isolating in the directions it names (both when those cannot be read)."""
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") if isinstance(obj.get("spec"), Mapping) else {}
    assert isinstance(spec, Mapping)
    types = spec.get("policyTypes")
    wanted = (
        list(types)
        if isinstance(types, list) and set(types) <= {"Ingress", "Egress"} and types
        else ["Ingress", "Egress"]
    )
    base = {"name": metadata.get("name"), "namespace": metadata.get("namespace")}
    selectors: tuple[Any, ...] = (spec.get("podSelector", {}), {})
    for selector in selectors:
        stand_in = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": base,
            "spec": {"podSelector": selector, "policyTypes": wanted},
        }
        try:
            return inventory_from_objects([stand_in]).policies[0]
        except ValidationError:
            continue
    raise AssertionError("a rule-less policy selecting every pod is always valid")


def _readable_part(kind: str, obj: Mapping[str, Any]) -> Namespace | Pod | None:
    """A Namespace or Pod from only the fields enforcement needs, or None."""
    metadata = obj.get("metadata") or {}
    part: Obj = {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {k: metadata[k] for k in ("name", "namespace", "labels") if k in metadata},
    }
    if kind == "Pod":
        spec = obj.get("spec") if isinstance(obj.get("spec"), Mapping) else {}
        status = obj.get("status") if isinstance(obj.get("status"), Mapping) else {}
        assert isinstance(spec, Mapping)
        assert isinstance(status, Mapping)
        part["spec"] = {
            "containers": [{"name": "c", "image": "unknown"}],
            **{k: spec[k] for k in ("nodeName", "hostNetwork") if k in spec},
        }
        part["status"] = {k: status[k] for k in ("phase", "podIP", "podIPs") if k in status}
    try:
        inventory = inventory_from_objects([part])
    except ValidationError:
        return None
    if kind == "Namespace":
        return inventory.namespaces[0]
    return inventory.pods[0] if inventory.pods else None


class Store:
    """Thread-safe: informer threads ``put``/``remove``; the reconciler takes ``snapshot``s."""

    def __init__(
        self,
        node: str,
        *,
        unsupported: Collection[Protocol] = (),
        settings: Settings = DEFAULT_SETTINGS,
    ) -> None:
        self.node = node
        self.settings = settings
        self.unsupported = frozenset(unsupported)
        self._lock = threading.Lock()
        self._models: dict[str, dict[str, Model]] = {k: {} for k in KINDS}
        self._problems: dict[tuple[str, str], Problem] = {}
        self._sorted: dict[str, tuple[Any, ...] | None] = dict.fromkeys(KINDS)
        self._positions: dict[str, dict[str, int]] = {k: {} for k in KINDS}  # key -> index
        # Policies of namespaces without a pod of this node, not parsed until one arrives.
        self._pending: dict[str, Mapping[str, Any]] = {}
        self._pending_in: dict[str, set[str]] = {}  # namespace -> its keys in ``_pending``
        self._local: dict[str, set[str]] = {}  # namespace -> keys of this node's pods in it
        self.version = 0
        # Kept up to date with each pod change, so that a snapshot does not look at every pod:
        # the live pods (running, addressed) sorted by (namespace, name), their addresses
        # (not hostNetwork), this node's, and the pods changed since the last snapshot.
        self._live = SortedPods()
        self._addresses: dict[str, tuple[IPAddress, ...]] = {}
        self._local_live: set[str] = set()
        self._here: dict[str, int] = {}  # namespace -> how many of ``_local_live`` are in it
        self._dirty: set[str] = set()
        # What the last snapshot planned from: its version, the kept (relevant) pods and what
        # decided them; a snapshot with the same namespaces and planned policies updates the
        # kept pods for the dirty ones only.
        self._snapped: int | None = None
        self._kept = SortedPods()
        self._basis: (
            tuple[tuple[Namespace, ...], tuple[NetworkPolicy, ...], object, bool] | None
        ) = None
        self._relevance: Relevance | None = None
        self._planned: tuple[tuple[NetworkPolicy, ...], frozenset[str], tuple[NetworkPolicy, ...]]
        self._planned = ((), frozenset(), ())
        self._nodes = NodeTable()  # for the tiers' ``nodes`` peer (``_nodes``)

    def put(self, kind: str, key: str, obj: Mapping[str, Any]) -> Problem | None:
        """Parse and keep one object (ADDED, MODIFIED, SYNC); the problem, if it has one.

        A policy in a namespace without a pod of this node is kept unparsed: it cannot touch
        this node's table (S01), and the nodes whose pods it selects report its problems."""
        if kind == "Node":
            return self._put_node(key, obj)
        if kind == "NetworkPolicy":
            with self._lock:
                if key.partition("/")[0] not in self._local:
                    self._pending[key] = obj
                    self._pending_in.setdefault(key.partition("/")[0], set()).add(key)
                    if self._models[kind].pop(key, None) is not None:
                        self._sorted[kind] = None
                        self.version += 1
                    self._problems.pop((kind, key), None)
                    return None
                self._unpend(key)
        problem, model = self._compile(kind, key, obj)
        woken: list[tuple[str, Mapping[str, Any]]] = []
        with self._lock:
            self._keep(kind, key, model, problem)
            if kind == "Pod":
                woken = self._track_local(key, model)
        for policy_key, policy in woken:  # the first pod of this node in their namespace
            found, parsed = self._compile("NetworkPolicy", policy_key, policy)
            with self._lock:
                if self._pending.get(policy_key) is policy:  # not changed meanwhile
                    self._unpend(policy_key)
                    self._keep("NetworkPolicy", policy_key, parsed, found)
        return problem

    def _put_node(self, key: str, obj: Mapping[str, Any]) -> Problem | None:
        """A Node: parsed only when what the tiers read of it changed (not on heartbeats)."""
        manifest = reduced(obj)
        with self._lock:
            if self._nodes.unchanged(key, manifest):
                return self._problems.get(("Node", key))
        parsed = parse_node(manifest)
        problem = None if parsed.problem is None else Problem("Node", key, parsed.problem, obj)
        with self._lock:
            changed = self._nodes.keep(key, manifest, parsed)
            if problem is None:
                changed = self._problems.pop(("Node", key), None) is not None or changed
            else:
                self._problems[("Node", key)] = problem
            if changed:
                self.version += 1
        return problem

    def put_pods(self, items: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """``put`` for many pods at once (the first list): each read by ``pod_record``, the
        rest parsed as one batch, which costs far less than one parse each; when the batch has
        a problem, one by one (``put``)."""
        parsed: dict[str, Pod | None] = {}
        rest: list[tuple[str, Mapping[str, Any]]] = []
        for key, obj in items:
            record = pod_record(obj)
            if record is None:
                rest.append((key, obj))
            else:
                parsed[key] = record if isinstance(record, Pod) else None
        if rest:
            try:
                inventory = inventory_from_objects([_manifest("Pod", obj) for _, obj in rest])
            except ValidationError:
                for key, obj in rest:
                    self.put("Pod", key, obj)
                items = [(key, obj) for key, obj in items if key in parsed]
            else:
                # A lone parse says document 0: the same model, so a resync finds no change.
                for p in inventory.pods:
                    origin = None if p.origin is None else replace(p.origin, document=0)
                    parsed[p.key] = replace(p, origin=origin)
        woken: dict[str, Mapping[str, Any]] = {}
        with self._lock:
            for key, _ in items:
                model = parsed.get(key)
                self._keep("Pod", key, model, None)
                woken.update(self._track_local(key, model))
        for policy_key, policy in woken.items():  # the first pod of this node in their namespace
            found, compiled = self._compile("NetworkPolicy", policy_key, policy)
            with self._lock:
                if self._pending.get(policy_key) is policy:
                    self._unpend(policy_key)
                    self._keep("NetworkPolicy", policy_key, compiled, found)

    def _unpend(self, key: str) -> None:
        if self._pending.pop(key, None) is not None:
            namespace = key.partition("/")[0]
            keys = self._pending_in[namespace]
            keys.discard(key)
            if not keys:
                del self._pending_in[namespace]

    def _track_local(self, key: str, model: object) -> list[tuple[str, Mapping[str, Any]]]:
        namespace = key.partition("/")[0]
        keys = self._local.get(namespace)
        if isinstance(model, Pod) and model.node == self.node:
            if keys is None:
                self._local[namespace] = {key}
                return [(k, self._pending[k]) for k in sorted(self._pending_in.get(namespace, ()))]
            keys.add(key)
        elif keys is not None:
            keys.discard(key)
            if not keys:
                del self._local[namespace]
        return []

    def _compile(
        self, kind: str, key: str, obj: Mapping[str, Any]
    ) -> tuple[Problem | None, Model | None]:
        problem: Problem | None = None
        model: Model | None = None
        if kind == "Pod":
            record = pod_record(obj)
            if record is not None:
                return None, record if isinstance(record, Pod) else None
        try:
            inventory = inventory_from_objects([_manifest(kind, obj)])
        except ValidationError as exc:
            problem = Problem(kind, key, _message(exc), obj)
            if kind in ADMIN_KINDS:
                model = None  # left out, and reported (the API server validates them as we do)
            elif kind == "NetworkPolicy":
                model = _isolating_stand_in(obj)
            else:
                model = _readable_part(kind, obj)
        else:
            if kind == "Namespace":
                model = inventory.namespaces[0]
            elif kind == "Pod":
                model = inventory.pods[0] if inventory.pods else None
            elif kind in ADMIN_KINDS:
                model = inventory.admin_policies[0] if inventory.admin_policies else None
            else:
                model = inventory.policies[0]
                reason = _unsupported(model, self.unsupported)
                if reason is not None:
                    problem = Problem(kind, key, reason, obj)
                    model = _isolating_stand_in(obj)
        return problem, model

    def _keep(
        self,
        kind: str,
        key: str,
        model: Model | None,
        problem: Problem | None,
    ) -> None:
        models = self._models[kind]
        if model is None:
            changed = models.pop(key, None) is not None
            if changed:
                self._sorted[kind] = None
        else:
            old = models.get(key)
            changed = old != model
            models[key] = model
            found = self._sorted[kind]
            if changed and found is not None and old is not None:
                # The same key keeps its place in the sorted tuple: no sort for a change.
                values = list(found)
                values[self._positions[kind][key]] = model
                self._sorted[kind] = tuple(values)
            elif changed:
                self._sorted[kind] = None
        if changed and kind == "Pod":
            self._pod_changed(key, model if isinstance(model, Pod) else None)
        if problem is None:
            changed = self._problems.pop((kind, key), None) is not None or changed
        else:
            self._problems[(kind, key)] = problem
        if changed:
            self.version += 1

    def remove(self, kind: str, key: str) -> None:
        with self._lock:
            if kind == "Node":
                self._problems.pop(("Node", key), None)
                if self._nodes.remove(key):
                    self.version += 1
                return
            gone = self._models[kind].pop(key, None) is not None
            self._problems.pop((kind, key), None)
            if kind == "NetworkPolicy":
                self._unpend(key)
            elif kind == "Pod":
                self._track_local(key, None)
                if gone:
                    self._pod_changed(key, None)
            if gone:
                self._sorted[kind] = None
                self.version += 1

    def count(self, kind: str) -> int:
        with self._lock:
            if kind == "Node":
                return len(self._nodes)
            pending = len(self._pending) if kind == "NetworkPolicy" else 0
            return len(self._models[kind]) + pending

    def _tuple(self, kind: str) -> tuple[Any, ...]:
        found = self._sorted[kind]
        if found is None:
            items: list[tuple[str, Any]] = list(self._models[kind].items())
            if kind == "Namespace" or kind in ADMIN_KINDS:
                items.sort(key=lambda item: item[1].name)
            else:
                items.sort(key=lambda item: (item[1].namespace, item[1].name))
            found = tuple(model for _, model in items)
            self._sorted[kind] = found
            self._positions[kind] = {key: index for index, (key, _) in enumerate(items)}
        return found

    def _pod_changed(self, key: str, pod: Pod | None) -> None:
        """Bring the live views up to date for one pod (``pod`` None: gone)."""
        live = pod if pod is not None and pod.phase not in _GONE_PHASES and pod.ips else None
        self._live.put(key, live)
        self._dirty.add(key)
        if live is not None and not live.host_network:
            self._addresses[key] = live.ips
        else:
            self._addresses.pop(key, None)
        local = live is not None and live.node == self.node and not live.host_network
        if local == (key in self._local_live):
            return
        namespace = key.partition("/")[0]
        if local:
            self._local_live.add(key)
            self._here[namespace] = self._here.get(namespace, 0) + 1
        else:
            self._local_live.discard(key)
            self._here[namespace] -= 1
            if not self._here[namespace]:
                del self._here[namespace]

    def _planned_policies(self, policies: tuple[NetworkPolicy, ...]) -> tuple[NetworkPolicy, ...]:
        """The policies of namespaces with a pod of this node (the same tuple while neither
        changes). A policy selects pods of its own namespace only (S01): one in a namespace
        without a pod of this node adds nothing to this node's table."""
        here = frozenset(self._here)
        known, known_here, planned = self._planned
        if known is not policies or known_here != here:
            planned = tuple(p for p in policies if p.namespace in here)
            self._planned = (policies, here, planned)
        return planned

    def snapshot(self) -> Snapshot:
        """The state to plan from. Costs O(changed pods) when the namespaces and the planned
        policies are those of the previous snapshot, else O(pods)."""
        with self._lock:
            namespaces = self._tuple("Namespace")
            policies = self._tuple("NetworkPolicy")
            problems = tuple(self._problems.values())
            version = self.version
            admin = tuple(
                sorted(
                    (p for k in ADMIN_KINDS for p in self._tuple(k)), key=lambda p: (p.name, p.kind)
                )
            )
            total = len(policies) + len(self._pending) + len(admin)
            planned = self._planned_policies(policies)
            local = frozenset(self._local_live)
            addresses = dict(self._addresses)
            dirty, self._dirty = self._dirty, set()
            relevance = self._relevance
            nodes = self._nodes.models()
            if (
                relevance is None
                or self._basis is None
                or not (
                    self._basis[0] is namespaces
                    and self._basis[1] is planned
                    and self._basis[3] == bool(admin)
                )
            ):
                # Admin tiers' peers reach any namespace (and pods stand for their nodes).
                relevance = Relevance(
                    planned,
                    namespace_labels=Inventory(namespaces=namespaces).namespace_labels,
                    settings=self.settings,
                )
                if admin:
                    relevance.everything = True
            basis = (namespaces, planned, relevance.signature(), bool(admin))
            changes = PodChanges(base=None, version=version, pods={})
            if (
                self._basis is not None
                and self._snapped is not None
                and self._basis[0] is namespaces
                and self._basis[2] == basis[2]
            ):
                # The same pods are kept for the pods that did not change: update the rest.
                self._relevance = relevance
                self._basis = basis
                pods: dict[str, Pod | None] = {}
                for key in dirty:
                    pod = self._live.get(key)
                    if pod is not None and not relevance.keeps(pod, local=key in local):
                        pod = None
                    self._kept.put(key, pod)
                    pods[key] = pod
                changes = PodChanges(base=self._snapped, version=version, pods=pods)
            else:
                self._relevance = relevance
                self._kept = (
                    self._live.copy()
                    if relevance.everything
                    else self._live.filtered(relevance, local)
                )
                self._basis = basis
            self._snapped = version
            kept = self._kept.pods()
            pods_total = len(self._live)
        inventory = Inventory(
            namespaces=namespaces, pods=kept, policies=planned, admin_policies=admin, nodes=nodes
        )
        return Snapshot(
            inventory, local, addresses, problems, version, total, pods_total, changes=changes
        )
