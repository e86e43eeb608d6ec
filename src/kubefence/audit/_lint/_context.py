"""What every lint check reads: the options, the inventory with its compiled policies, field paths
and the one way to build a ``Finding`` located at a policy or namespace.

Why this module exists: the checks live in one module per family (peers, selection, ports, DNS,
ipBlocks, defaults, redundancy, duplicates), and each needs the same context and the same
spelling of field paths (``spec.ingress[0].from[1]``), so that findings of different families
point at objects and lines the same way.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kubefence.api import (
    Inventory,
    IPAddress,
    IPBlock,
    IPNetwork,
    Labels,
    Namespace,
    NetworkPolicy,
    Pod,
    rule_path,
)
from kubefence.audit._common import DEFAULT_SERVICE_CIDRS, NODE_LOCAL_DNS
from kubefence.audit._findings import RULES_BY_ID, Finding, Severity
from kubefence.semantics import (
    DEFAULT_SETTINGS,
    CompiledPolicy,
    CompiledRule,
    Direction,
    PeerKind,
    PeerMatcher,
    PolicyIndex,
    Settings,
    block_intervals,
    network_interval,
    peer_matches_pod,
    selector_matches,
    selects_pod,
)

__all__ = [
    "LintContext",
    "LintOptions",
    "directions",
    "list_field",
    "peer_path",
    "port_path",
    "rule_path_of",
]


@dataclass(frozen=True, slots=True)
class LintOptions:
    """Cluster facts the manifests do not carry: Service and pod ranges, NodeLocal DNS."""

    service_cidrs: tuple[IPNetwork, ...] = DEFAULT_SERVICE_CIDRS
    node_local_dns: tuple[IPAddress, ...] = field(default=(NODE_LOCAL_DNS,))
    pod_cidrs: tuple[IPNetwork, ...] = ()  # for KF007 when the input has no pod addresses
    settings: Settings = DEFAULT_SETTINGS
    tenant_label: str | None = None  # KF017: tenants by this namespace label (None: namespaces)


def list_field(direction: Direction) -> str:
    """The peer list's field name: ``from`` (ingress) or ``to`` (egress)."""
    return "from" if direction is Direction.INGRESS else "to"


def rule_path_of(direction: Direction, rule: int) -> str:
    """``spec.ingress[0]``."""
    return rule_path(direction.value, rule)


def peer_path(direction: Direction, rule: int, peer: int) -> str:
    """``spec.ingress[0].from[1]``."""
    return f"{rule_path_of(direction, rule)}.{list_field(direction)}[{peer}]"


def port_path(direction: Direction, rule: int, port: int) -> str:
    """``spec.egress[0].ports[2]``."""
    return f"{rule_path_of(direction, rule)}.ports[{port}]"


def directions(compiled: CompiledPolicy) -> Iterator[tuple[Direction, tuple[CompiledRule, ...]]]:
    """The directions ``compiled`` isolates, each with its rules."""
    for direction in (Direction.INGRESS, Direction.EGRESS):
        rules = compiled.rules(direction)
        if rules is not None:
            yield direction, rules


@dataclass(frozen=True, slots=True)
class LintContext:
    """The input of every check; built once per ``lint`` call."""

    inventory: Inventory
    options: LintOptions
    index: PolicyIndex  # the compiled policies by namespace, shared with ``decide``
    namespaces: tuple[str, ...]  # every namespace known: declared, implicit or holding pods
    # peer_pods' answers per (namespace, namespaceSelector, podSelector); filled as it goes
    peer_memo: dict[tuple[Any, ...], tuple[Pod, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    # selected_namespaces' answers per namespaceSelector
    namespace_memo: dict[Any, frozenset[str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    # selected_pods' answers per (namespace, podSelector)
    selected_memo: dict[tuple[str, Any], tuple[Pod, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    # every pod IP as (version, integer, index in inventory.pods), sorted; filled on first use
    sorted_addresses: list[tuple[int, int, int]] = field(
        default_factory=list, init=False, repr=False, compare=False
    )

    def pods_with_address_in(self, network: IPNetwork) -> list[Pod]:
        """The pods (in the inventory's order) with an IP inside ``network``: one range of
        every pod IP sorted once (bisect), not a scan of every pod per block."""
        return self._pods_in(network.version, (network_interval(network),))

    def pods_with_address_in_block(self, block: IPBlock) -> list[Pod]:
        """The pods (in the inventory's order) with an IP the ipBlock matches (S15: in its
        CIDR, outside every ``except``), one bisected range per interval of the block."""
        return self._pods_in(block.cidr.version, block_intervals(block))

    def _pods_in(self, version: int, intervals: Iterable[tuple[int, int]]) -> list[Pod]:
        pods = self.inventory.pods
        if not self.sorted_addresses:
            self.sorted_addresses.extend(
                sorted((ip.version, int(ip), k) for k, p in enumerate(pods) for ip in p.ips)
            )
        found = self.sorted_addresses
        hits: set[int] = set()
        for low, high in intervals:
            lo = bisect_left(found, (version, low, -1))
            hi = bisect_right(found, (version, high, len(pods)))
            hits.update(k for _, _, k in found[lo:hi])
        return [pods[k] for k in sorted(hits)]

    def selected_namespaces(self, selector: Any) -> frozenset[str]:
        """The known namespaces (``namespaces``) whose labels ``selector`` matches; decided
        once per selector (7,000 policies at 1,000 namespaces repeat their selectors)."""
        found = self.namespace_memo.get(selector)
        if found is None:
            labels = self.inventory.namespace_labels
            found = frozenset(n for n in self.namespaces if selector_matches(selector, labels(n)))
            self.namespace_memo[selector] = found
        return found

    @property
    def compiled(self) -> tuple[CompiledPolicy, ...]:
        """Every policy, compiled, in the inventory's (namespace, name) order."""
        by_ns = self.index.policies_by_namespace
        return tuple(c for ns in sorted(by_ns) for c in by_ns[ns])

    @property
    def has_pods(self) -> bool:
        return bool(self.inventory.pods)

    def finding(
        self,
        rule: str,
        message: str,
        *,
        policy: NetworkPolicy | None = None,
        namespace: Namespace | None = None,
        namespace_name: str | None = None,
        path: str = "",
        severity: Severity | None = None,
        fix: str | None = None,
    ) -> Finding:
        """A finding of ``rule`` located at ``policy`` (line of ``path``) or at a namespace."""
        meta = RULES_BY_ID[rule]
        file: str | None = None
        line: int | None = None
        obj: str | None = None
        ns_name = namespace_name
        if policy is not None:
            obj = f"NetworkPolicy {policy.key}"
            ns_name = policy.namespace
            if policy.origin is not None:
                file = policy.origin.file
                line = policy.line_of(path) if path else policy.origin.line
        elif namespace is not None:
            obj = f"Namespace {namespace.name}"
            ns_name = namespace.name
            if namespace.origin is not None:
                file, line = namespace.origin.file, namespace.origin.line
        elif ns_name is not None:
            obj = f"Namespace {ns_name}"
        return Finding(
            rule=rule,
            severity=severity or meta.severity,
            message=message,
            fix=fix or meta.fix,
            namespace=ns_name,
            object=obj,
            path=path,
            file=file,
            line=line,
        )

    def selected_pods(self, compiled: CompiledPolicy) -> tuple[Pod, ...]:
        """The pods of the policy's namespace its podSelector selects (in the inventory's
        order); decided once per namespace and podSelector."""
        key = (compiled.namespace, compiled.pod_selector)
        found = self.selected_memo.get(key)
        if found is None:
            pods = self.inventory.pods_by_namespace.get(compiled.namespace, ())
            settings = self.options.settings
            found = self.selected_memo[key] = tuple(
                p for p in pods if selects_pod(compiled, p, settings=settings)
            )
        return found

    def peer_pods(self, peer: PeerMatcher) -> tuple[Pod, ...]:
        """Every pod of the input ``peer`` matches (in the inventory's order).

        A pod/namespace peer can only match pods of the namespaces its ``namespace`` or
        ``namespaceSelector`` admits, so those are decided once per namespace and only their
        pods are tried; among those, whether a pod matches depends only on its labels and
        ``hostNetwork``, decided once per distinct pair; and peers with the same selectors
        share the answer (10,000 pods, 1,000 namespaces, 7,000 policies: lint went from
        minutes to seconds).
        """
        inv = self.inventory
        settings = self.options.settings
        if peer.kind is not PeerKind.PODS:  # an ipBlock, or every pod: shared per block
            key: tuple[Any, ...] = (peer.kind, peer.ip_block)
            found = self.peer_memo.get(key)
            if found is None:
                # an ipBlock matches only pods with an IP in its CIDR (S15): only those tried
                tried = (
                    inv.pods
                    if peer.ip_block is None
                    else self.pods_with_address_in(peer.ip_block.cidr)
                )
                found = self.peer_memo[key] = tuple(
                    p
                    for p in tried
                    if peer_matches_pod(
                        peer, p, inv.namespace_labels(p.namespace), settings=settings
                    )
                )
            return found
        key = (peer.namespace, peer.namespace_selector, peer.pod_selector)
        found = self.peer_memo.get(key)
        if found is None:
            groups: Iterable[tuple[Pod, ...]]
            if peer.namespace is not None:
                groups = (inv.pods_by_namespace.get(peer.namespace, ()),)
            elif peer.namespace_selector is not None:
                chosen = self.selected_namespaces(peer.namespace_selector)
                groups = (
                    pods
                    for ns, pods in inv.pods_by_namespace.items()  # sorted, as inv.pods
                    if ns in chosen
                )
            else:  # pragma: no cover - a pod peer names its namespace or selects namespaces
                groups = (inv.pods,)
            decided: dict[tuple[Labels, bool], bool] = {}
            kept = []
            for pods in groups:
                for p in pods:
                    shape = (p.labels, p.host_network)
                    ok = decided.get(shape)
                    if ok is None:
                        ok = decided[shape] = peer_matches_pod(
                            peer, p, inv.namespace_labels(p.namespace), settings=settings
                        )
                    if ok:
                        kept.append(p)
            found = self.peer_memo[key] = tuple(kept)
        return found
