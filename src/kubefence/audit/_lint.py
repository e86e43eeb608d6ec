"""The lint checks: patterns in valid NetworkPolicies that are almost always mistakes.

Why this module exists: a validated manifest can still be wrong in ways the API server accepts
(the AND/OR list-item trap, selectors matching nothing, default-deny egress without DNS, ipBlocks
aimed at ClusterIPs). Each check reads the inventory and the compiled algebra only, so it agrees
with the evaluators on what every field means, and reports data (``Finding``), never text
formatted for a terminal.

Checks that compare selectors with pods (KF002, KF003, KF004 for ingress, KF007) run only when
the input contains pods: a repository of policies alone says nothing about which pods exist.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from kubefence.api import (
    ContainerPort,
    Document,
    Inventory,
    IPAddress,
    IPBlock,
    IPNetwork,
    Labels,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Operator,
    Pod,
    Protocol,
    rule_path,
)
from kubefence.audit._findings import RULES_BY_ID, Finding, Severity
from kubefence.semantics import (
    DEFAULT_SETTINGS,
    CompiledPolicy,
    CompiledRule,
    Direction,
    PeerKind,
    PeerMatcher,
    PolicyIndex,
    PortMatcher,
    Settings,
    index_for,
    ip_in_block,
    isolating_policies,
    peer_matches_ip,
    peer_matches_pod,
    port_matches,
    selector_matches,
    selects_pod,
)

__all__ = [
    "DEFAULT_SERVICE_CIDRS",
    "NODE_LOCAL_DNS",
    "LintOptions",
    "describe_block",
    "describe_selector",
    "isolated_count",
    "lint",
    "split_duplicate_policies",
]

DEFAULT_SERVICE_CIDRS: tuple[IPNetwork, ...] = (ipaddress.ip_network("10.96.0.0/12"),)
NODE_LOCAL_DNS: IPAddress = ipaddress.ip_address("169.254.20.10")
_DNS_PORT = 53
_DNS_NAMESPACE = "kube-system"
_DNS_LABELS = Labels({"k8s-app": "kube-dns"})


@dataclass(frozen=True, slots=True)
class LintOptions:
    """Cluster facts the manifests do not carry: Service and pod ranges, NodeLocal DNS."""

    service_cidrs: tuple[IPNetwork, ...] = DEFAULT_SERVICE_CIDRS
    node_local_dns: tuple[IPAddress, ...] = field(default=(NODE_LOCAL_DNS,))
    pod_cidrs: tuple[IPNetwork, ...] = ()  # for KF007 when the input has no pod addresses
    settings: Settings = DEFAULT_SETTINGS


# --- helpers ----------------------------------------------------------------------------------


def describe_selector(selector: LabelSelector | None) -> str:
    """A short, stable text form of a selector: ``{app=web, tier in (a,b)}``; None is 'all'."""
    if selector is None or selector.is_empty:
        return "{}"
    parts = [f"{k}={v}" for k, v in selector.match_labels.items()]
    for req in selector.match_expressions:
        if req.operator in (Operator.IN, Operator.NOT_IN):
            op = "in" if req.operator is Operator.IN else "notin"
            parts.append(f"{req.key} {op} ({','.join(req.values)})")
        elif req.operator is Operator.EXISTS:
            parts.append(req.key)
        else:
            parts.append(f"!{req.key}")
    return "{" + ", ".join(parts) + "}"


def describe_block(block: IPBlock) -> str:
    """``10.0.0.0/8`` or ``10.0.0.0/8 except 10.1.0.0/16, 10.2.0.0/16``."""
    if not block.except_:
        return str(block.cidr)
    return f"{block.cidr} except {', '.join(str(e) for e in block.except_)}"


def isolated_count(
    pods: Sequence[Pod],
    compiled: Sequence[CompiledPolicy],
    direction: Direction,
    *,
    settings: Settings,
) -> int:
    """How many of ``pods`` some policy of ``compiled`` selects and isolates in ``direction``."""
    return sum(1 for pod in pods if isolating_policies(compiled, pod, direction, settings=settings))


def _field(direction: Direction) -> str:
    return "from" if direction is Direction.INGRESS else "to"


def _rule_path(direction: Direction, rule: int) -> str:
    return rule_path(direction.value, rule)


def _peer_path(direction: Direction, rule: int, peer: int) -> str:
    return f"{_rule_path(direction, rule)}.{_field(direction)}[{peer}]"


def _port_path(direction: Direction, rule: int, port: int) -> str:
    return f"{_rule_path(direction, rule)}.ports[{port}]"


def _directions(compiled: CompiledPolicy) -> Iterator[tuple[Direction, tuple[CompiledRule, ...]]]:
    for direction in (Direction.INGRESS, Direction.EGRESS):
        rules = compiled.rules(direction)
        if rules is not None:
            yield direction, rules


@dataclass(frozen=True, slots=True)
class _Context:
    inventory: Inventory
    options: LintOptions
    index: PolicyIndex  # the compiled policies by namespace, shared with ``decide``
    namespaces: tuple[str, ...]  # every namespace known: declared, implicit or holding pods

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

    def selected_pods(self, compiled: CompiledPolicy) -> list[Pod]:
        pods = self.inventory.pods_by_namespace.get(compiled.namespace, ())
        return [p for p in pods if selects_pod(compiled, p, settings=self.options.settings)]

    def peer_pods(self, peer: PeerMatcher) -> list[Pod]:
        inv = self.inventory
        return [
            p
            for p in inv.pods
            if peer_matches_pod(
                peer, p, inv.namespace_labels(p.namespace), settings=self.options.settings
            )
        ]


# --- checks -----------------------------------------------------------------------------------


def _and_or_near_miss(ctx: _Context) -> Iterator[Finding]:
    """KF001: a namespaceSelector-only item next to a podSelector-only item in one list."""
    for compiled in ctx.compiled:
        policy = compiled.source
        for direction, rules in _directions(compiled):
            source_rules = policy.ingress if direction is Direction.INGRESS else policy.egress
            for rule in rules:
                peers = source_rules[rule.index].peers
                ns_only = [
                    i
                    for i, p in enumerate(peers)
                    if p.ip_block is None
                    and p.namespace_selector is not None
                    and p.pod_selector is None
                ]
                pod_only = [
                    i
                    for i, p in enumerate(peers)
                    if p.ip_block is None
                    and p.pod_selector is not None
                    and p.namespace_selector is None
                ]
                if not ns_only or not pod_only:
                    continue
                i, j = ns_only[0], pod_only[0]
                ns_sel = describe_selector(peers[i].namespace_selector)
                pod_sel = describe_selector(peers[j].pod_selector)
                list_path = f"{_rule_path(direction, rule.index)}.{_field(direction)}"
                yield ctx.finding(
                    "KF001",
                    f"{list_path}[{i}] (namespaceSelector {ns_sel}) and [{j}] (podSelector "
                    f"{pod_sel}) are separate items, so they are ORed: every pod of namespaces "
                    f"{ns_sel}, plus pods {pod_sel} of namespace {policy.namespace}. The AND "
                    f"('pods {pod_sel} in namespaces {ns_sel}') needs them in one item.",
                    policy=policy,
                    path=_peer_path(direction, rule.index, i),
                )


def _policy_selects_no_pod(ctx: _Context) -> Iterator[Finding]:
    """KF002: spec.podSelector matches no pod of the namespace."""
    if not ctx.has_pods:
        return
    for compiled in ctx.compiled:
        if ctx.selected_pods(compiled):
            continue
        count = len(ctx.inventory.pods_by_namespace.get(compiled.namespace, ()))
        yield ctx.finding(
            "KF002",
            f"spec.podSelector {describe_selector(compiled.pod_selector)} selects none of the "
            f"{count} pod{'s' if count != 1 else ''} of namespace {compiled.namespace}",
            policy=compiled.source,
            path="spec.podSelector",
        )


def _peer_matches_nothing(ctx: _Context) -> Iterator[Finding]:
    """KF003: a pod/namespace peer that matches no namespace or no pod."""
    if not ctx.has_pods:
        return
    inv = ctx.inventory
    for compiled in ctx.compiled:
        for direction, rules in _directions(compiled):
            for rule in rules:
                for peer in rule.peers:
                    if peer.kind is not PeerKind.PODS or ctx.peer_pods(peer):
                        continue
                    path = _peer_path(direction, rule.index, peer.index)
                    if peer.namespace_selector is not None and not any(
                        selector_matches(peer.namespace_selector, inv.namespace_labels(ns))
                        for ns in ctx.namespaces
                    ):
                        what = (
                            f"namespaceSelector {describe_selector(peer.namespace_selector)} "
                            f"matches none of the {len(ctx.namespaces)} namespaces"
                        )
                    else:
                        scope = (
                            f"namespace {peer.namespace}"
                            if peer.namespace is not None
                            else "the selected namespaces"
                        )
                        what = (
                            f"podSelector {describe_selector(peer.pod_selector)} matches no "
                            f"pod in {scope}"
                        )
                    yield ctx.finding(
                        "KF003",
                        f"{path}: {what}; the peer allows nothing",
                        policy=compiled.source,
                        path=path,
                    )


def _declares(pods: Sequence[Pod], name: str, protocol: Protocol) -> bool:
    return any(cp.name == name and cp.protocol is protocol for p in pods for cp in p.ports)


def _named_port_undeclared(ctx: _Context) -> Iterator[Finding]:
    """KF004: a named port no candidate destination declares (S21)."""
    for compiled in ctx.compiled:
        for direction, rules in _directions(compiled):
            for rule in rules:
                named = [m for m in rule.ports if m.name is not None]
                if not named:
                    continue
                if direction is Direction.INGRESS:
                    if not ctx.has_pods:
                        continue
                    candidates = ctx.selected_pods(compiled)
                    if not candidates:
                        continue  # KF002 reports the policy itself
                    where = f"the {len(candidates)} pod(s) this policy selects"
                else:
                    ip_only = all(p.kind is PeerKind.IP_BLOCK for p in rule.peers)
                    pods: dict[str, Pod] = {}
                    for peer in rule.peers:
                        pods.update((p.key, p) for p in ctx.peer_pods(peer))
                    candidates = list(pods.values())
                    if not candidates and not ip_only:
                        continue  # KF003 reports the peers (or the input has no pods)
                    where = (
                        "any pod covered by the ipBlock peers (a named port towards an "
                        "external address never matches)"
                        if ip_only
                        else f"the {len(candidates)} destination pod(s) of this rule"
                    )
                for matcher in named:
                    assert matcher.name is not None
                    assert matcher.protocol is not None
                    if _declares(candidates, matcher.name, matcher.protocol):
                        continue
                    path = _port_path(direction, rule.index, matcher.index)
                    yield ctx.finding(
                        "KF004",
                        f"{path}: port name '{matcher.name}' ({matcher.protocol}) is declared "
                        f"by none of {where}; the entry matches nothing",
                        policy=compiled.source,
                        path=path,
                    )


def _synthetic_pod(compiled: CompiledPolicy) -> Pod:
    """A pod the policy would select, for checks on inputs that hold policies but no pods."""
    labels = dict(compiled.pod_selector.match_labels)
    for req in compiled.pod_selector.match_expressions:
        if req.operator is Operator.IN and req.key not in labels:
            labels[req.key] = req.values[0]
        elif req.operator is Operator.EXISTS and req.key not in labels:
            labels[req.key] = "x"
    return Pod(namespace=compiled.namespace, name="(any selected pod)", labels=Labels(labels))


def _dns_targets(inventory: Inventory) -> list[Pod]:
    found = [
        p
        for p in inventory.pods_by_namespace.get(_DNS_NAMESPACE, ())
        if selector_matches(LabelSelector(match_labels=_DNS_LABELS), p.labels)
    ]
    if found:
        return found
    return [
        Pod(
            namespace=_DNS_NAMESPACE,
            name="kube-dns",
            labels=_DNS_LABELS,
            ports=(
                ContainerPort(_DNS_PORT, Protocol.UDP, "dns"),
                ContainerPort(_DNS_PORT, Protocol.TCP, "dns-tcp"),
                ContainerPort(9153, Protocol.TCP, "metrics"),
            ),
        )
    ]


def _rule_allows_dns(ctx: _Context, rule: CompiledRule, targets: Sequence[Pod]) -> bool:
    inv = ctx.inventory
    settings = ctx.options.settings
    for target in targets:
        if any(
            peer_matches_pod(p, target, inv.namespace_labels(target.namespace), settings=settings)
            for p in rule.peers
        ) and any(port_matches(m, _DNS_PORT, Protocol.UDP, target.ports) for m in rule.ports):
            return True
    for address in ctx.options.node_local_dns:
        if any(peer_matches_ip(p, address) for p in rule.peers) and any(
            port_matches(m, _DNS_PORT, Protocol.UDP, None) for m in rule.ports
        ):
            return True
    return False


def _egress_without_dns(ctx: _Context) -> Iterator[Finding]:
    """KF005: egress-isolated pods with no rule allowing UDP 53 to kube-dns or NodeLocal DNS."""
    targets = _dns_targets(ctx.inventory)
    settings = ctx.options.settings
    reported: set[str] = set()  # pods already reported, so each is named by one policy only
    # Broadest first: a default deny (podSelector {}) is where the DNS rule belongs.
    ordered = sorted(ctx.compiled, key=lambda c: (not c.pod_selector.is_empty, c.namespace, c.name))
    for compiled in ordered:
        if compiled.egress is None:
            continue
        synthetic = not ctx.inventory.pods_by_namespace.get(compiled.namespace)
        pods = [_synthetic_pod(compiled)] if synthetic else ctx.selected_pods(compiled)
        blind: list[str] = []
        for pod in pods:
            if pod.key in reported:
                continue
            policies = list(
                isolating_policies(
                    ctx.index.policies_in(compiled.namespace),
                    pod,
                    Direction.EGRESS,
                    settings=settings,
                )
            )
            if synthetic and compiled not in policies:
                policies.append(compiled)  # the synthetic pod may miss NotIn/DoesNotExist terms
            if not any(
                _rule_allows_dns(ctx, rule, targets) for c in policies for rule in c.egress or ()
            ):
                blind.append(pod.name)
                reported.add(pod.key)
        if not blind:
            continue
        who = (
            "the pods it selects"
            if synthetic
            else f"{len(blind)} pod(s) ({', '.join(blind[:3])}{', ...' if len(blind) > 3 else ''})"
        )
        yield ctx.finding(
            "KF005",
            f"isolates {who} for egress, and no egress rule selecting them allows UDP 53 to "
            f"kube-dns ({_DNS_NAMESPACE}, k8s-app=kube-dns) or NodeLocal DNS "
            f"({', '.join(str(a) for a in ctx.options.node_local_dns)}): name resolution fails",
            policy=compiled.source,
            path=next(
                (p for p in ("spec.policyTypes", "spec.egress") if p in compiled.source.lines),
                "spec.podSelector",
            ),
        )


def _ip_blocks(ctx: _Context) -> Iterator[tuple[CompiledPolicy, str, IPBlock]]:
    for compiled in ctx.compiled:
        for direction, rules in _directions(compiled):
            for rule in rules:
                for peer in rule.peers:
                    if peer.kind is PeerKind.IP_BLOCK and peer.ip_block is not None:
                        path = _peer_path(direction, rule.index, peer.index)
                        yield compiled, f"{path}.ipBlock", peer.ip_block


def _overlap_left(block: IPBlock, network: IPNetwork) -> bool:
    """Does ``block`` (cidr minus excepts) share an address with ``network``?"""
    cidr = block.cidr
    if cidr.version != network.version or not cidr.overlaps(network):
        return False
    inner = network if network.subnet_of(cidr) else cidr  # type: ignore[arg-type]
    return not any(inner.subnet_of(e) for e in block.except_)  # type: ignore[arg-type]


def _ipblock_targets_service(ctx: _Context) -> Iterator[Finding]:
    """KF006: an ipBlock covering Service ClusterIPs or the Service range (S22)."""
    cluster_ips = [
        (svc, ip) for svc in ctx.inventory.services for ip in svc.cluster_ips if ip is not None
    ]
    for compiled, path, block in _ip_blocks(ctx):
        cidr = block.cidr
        if cidr.prefixlen == 0:
            continue  # "anywhere" is deliberate; it also covers pods and the internet
        inside = [
            s
            for s in ctx.options.service_cidrs
            if s.version == cidr.version and cidr.subnet_of(s)  # type: ignore[arg-type]
        ]
        hits = [(svc, ip) for svc, ip in cluster_ips if ip_in_block(ip, block)]
        exact = [
            (svc, ip) for svc, ip in hits if cidr.num_addresses == 1 and cidr.network_address == ip
        ]
        services = ", ".join(f"{svc.key} ({ip})" for svc, ip in hits[:3])
        if inside or exact:
            what = (
                f"lies inside the Service range {inside[0]}"
                if inside
                else f"is the ClusterIP of {services}"
            )
            yield ctx.finding(
                "KF006",
                f"{path} {describe_block(block)} {what}: policies see traffic after Service "
                "address translation (S22), so this block never matches",
                policy=compiled.source,
                path=path,
            )
            continue
        overlapping = [s for s in ctx.options.service_cidrs if _overlap_left(block, s)]
        if overlapping or hits:
            what = (
                f"covers the Service range {overlapping[0]}"
                if overlapping
                else f"covers the ClusterIP of {services}"
            )
            yield ctx.finding(
                "KF006",
                f"{path} {describe_block(block)} {what}; that part never matches after Service "
                "address translation (S22)",
                policy=compiled.source,
                path=path,
                severity=Severity.WARNING,
                fix="add the Service range to 'except' and select the backend pods with "
                "podSelector/namespaceSelector instead",
            )


def _ipblock_covers_pods(ctx: _Context) -> Iterator[Finding]:
    """KF007: an ipBlock (other than 0.0.0.0/0, ::/0) that matches known pod IPs, or that
    overlaps a pod CIDR given in the options (for inputs without pod addresses)."""
    candidates = [p for p in ctx.inventory.pods if p.ips and not p.host_network]
    for compiled, path, block in _ip_blocks(ctx):
        if block.cidr.prefixlen == 0:
            continue
        covered = [p.key for p in candidates if any(ip_in_block(ip, block) for ip in p.ips)]
        if covered:
            names = ", ".join(covered[:3]) + (", ..." if len(covered) > 3 else "")
            what = f"the addresses of {len(covered)} pod(s) ({names})"
        else:
            ranges = [str(c) for c in ctx.options.pod_cidrs if _overlap_left(block, c)]
            if not ranges:
                continue
            what = f"part of the pod range {', '.join(ranges)}"
        yield ctx.finding(
            "KF007",
            f"{path} {describe_block(block)} covers {what}: it admits whichever pod holds those "
            "IPs, regardless of labels",
            policy=compiled.source,
            path=path,
        )


def _spoofable_namespace_selector(ctx: _Context) -> Iterator[Finding]:
    """KF008: ``namespaceSelector: {}`` AND a podSelector with labels: any tenant can match."""
    for compiled in ctx.compiled:
        for direction, rules in _directions(compiled):
            for rule in rules:
                for peer in rule.peers:
                    if (
                        peer.kind is PeerKind.PODS
                        and peer.namespace_selector is not None
                        and peer.namespace_selector.is_empty
                        and peer.pod_selector is not None
                        and not peer.pod_selector.is_empty
                    ):
                        path = _peer_path(direction, rule.index, peer.index)
                        yield ctx.finding(
                            "KF008",
                            f"{path}: namespaceSelector {{}} with podSelector "
                            f"{describe_selector(peer.pod_selector)} admits such pods from every "
                            "namespace; any tenant can label a pod to match",
                            policy=compiled.source,
                            path=path,
                        )


def _no_default_deny(ctx: _Context) -> Iterator[Finding]:
    """KF009/KF010: no ``podSelector: {}`` policy isolating the namespace (per direction)."""
    inv = ctx.inventory
    for name in ctx.namespaces:
        namespace = inv.namespace_by_name.get(name)
        declared = namespace is not None and not namespace.implicit
        pods = inv.pods_by_namespace.get(name, ())
        if not declared and not pods:
            continue  # only referenced by a policy: not ours to judge
        policies = ctx.index.policies_in(name)
        for direction, rule_id in ((Direction.INGRESS, "KF009"), (Direction.EGRESS, "KF010")):
            if any(c.pod_selector.is_empty and c.rules(direction) is not None for c in policies):
                continue
            isolated = isolated_count(pods, policies, direction, settings=ctx.options.settings)
            coverage = f"; {isolated} of {len(pods)} pod(s) are isolated by narrower policies"
            found = ctx.finding(
                rule_id,
                f"namespace {name} has no default-deny {direction.value} policy"
                f"{coverage if pods else ''}",
                namespace=namespace if declared else None,
                namespace_name=name,
            )
            anchor = policies[0].source.origin if policies else None
            if found.file is None and anchor is not None:
                # Not declared in the input: point at a policy of the namespace instead.
                found = dataclasses.replace(found, file=anchor.file, line=anchor.line)
            yield found


def _allow_all_rule(ctx: _Context) -> Iterator[Finding]:
    """KF011: a rule with every peer and every port."""
    for compiled in ctx.compiled:
        for direction, rules in _directions(compiled):
            for rule in rules:
                every_peer = any(p.kind is PeerKind.ANY for p in rule.peers)
                every_port = any(m.protocol is None for m in rule.ports)
                if every_peer and every_port:
                    path = _rule_path(direction, rule.index)
                    yield ctx.finding(
                        "KF011",
                        f"{path} has no {_field(direction)} and no ports: it allows every "
                        f"{direction.value} connection of the pods "
                        f"{describe_selector(compiled.pod_selector)} it selects",
                        policy=compiled.source,
                        path=path,
                    )


# --- KF012: subsumption -----------------------------------------------------------------------


def _selector_covers(wide: LabelSelector | None, narrow: LabelSelector | None) -> bool:
    """Syntactic: every constraint of ``wide`` is also a constraint of ``narrow``."""
    if wide is None or wide.is_empty:
        return True
    if narrow is None:
        return False
    labels_ok = all(narrow.match_labels.get(k) == v for k, v in wide.match_labels.items())
    return labels_ok and set(wide.match_expressions) <= set(narrow.match_expressions)


def _block_covers(wide: IPBlock, narrow: IPBlock) -> bool:
    if wide.cidr.version != narrow.cidr.version:
        return False
    if not narrow.cidr.subnet_of(wide.cidr):  # type: ignore[arg-type]
        return False
    for hole in wide.except_:
        if not hole.overlaps(narrow.cidr):
            continue
        part = narrow.cidr if narrow.cidr.subnet_of(hole) else hole  # type: ignore[arg-type]
        if not any(part.subnet_of(e) for e in narrow.except_):  # type: ignore[arg-type]
            return False
    return True


def _peer_covers(wide: PeerMatcher, narrow: PeerMatcher) -> bool:
    if wide.kind is PeerKind.ANY:
        return True
    if narrow.kind is PeerKind.ANY or wide.kind is not narrow.kind:
        return False
    if wide.kind is PeerKind.IP_BLOCK:
        assert wide.ip_block is not None
        assert narrow.ip_block is not None
        return _block_covers(wide.ip_block, narrow.ip_block)
    if wide.namespace is not None:
        scope_ok = narrow.namespace == wide.namespace
    elif narrow.namespace is not None:
        scope_ok = wide.namespace_selector is not None and wide.namespace_selector.is_empty
    else:
        scope_ok = _selector_covers(wide.namespace_selector, narrow.namespace_selector)
    return scope_ok and _selector_covers(wide.pod_selector, narrow.pod_selector)


def _port_covers(wide: PortMatcher, narrow: PortMatcher) -> bool:
    if wide.protocol is None:
        return True
    if narrow.protocol is not wide.protocol:
        return False
    if wide.name is None and wide.low is None:
        return True
    if wide.name is not None:
        return narrow.name == wide.name
    if narrow.low is None or narrow.high is None:
        return False
    assert wide.low is not None
    assert wide.high is not None
    return wide.low <= narrow.low and narrow.high <= wide.high


def _rule_covers(wide: CompiledRule, narrow: CompiledRule) -> bool:
    return all(any(_peer_covers(w, n) for w in wide.peers) for n in narrow.peers) and all(
        any(_port_covers(w, n) for w in wide.ports) for n in narrow.ports
    )


def _redundant_rule(ctx: _Context) -> Iterator[Finding]:
    """KF012: a rule whose peers and ports another rule (for at least the same pods) covers."""
    for policies in ctx.index.policies_by_namespace.values():
        for direction in (Direction.INGRESS, Direction.EGRESS):
            entries = [
                (order, c, rule)
                for order, c in enumerate(policies)
                for rule in c.rules(direction) or ()
            ]
            for order, compiled, rule in entries:
                for other_order, other, other_rule in entries:
                    if (other_order, other_rule.index) == (order, rule.index):
                        continue
                    if other is not compiled and not (
                        other.pod_selector.is_empty or other.pod_selector == compiled.pod_selector
                    ):
                        continue
                    if not _rule_covers(other_rule, rule):
                        continue
                    mutual = other.pod_selector == compiled.pod_selector and _rule_covers(
                        rule, other_rule
                    )
                    if mutual and (other_order, other_rule.index) > (order, rule.index):
                        continue  # identical rules: report only the later one
                    path = _rule_path(direction, rule.index)
                    by = (
                        f"{_rule_path(direction, other_rule.index)} of the same policy"
                        if other is compiled
                        else f"{_rule_path(direction, other_rule.index)} of policy {other.name}"
                    )
                    where = other.source.origin
                    other_path = _rule_path(direction, other_rule.index)
                    at = (
                        f" ({where.file}:{other.source.line_of(other_path)})"
                        if where is not None
                        else ""
                    )
                    yield ctx.finding(
                        "KF012",
                        f"{path} is covered by {by}{at}: every peer and port it allows is "
                        "already allowed",
                        policy=compiled.source,
                        path=path,
                    )
                    break


def _duplicate_message(key: str, first: str) -> str:
    return f"NetworkPolicy {key} is also defined at {first}; applying both keeps only the last one"


def _duplicate_policy_name(ctx: _Context) -> Iterator[Finding]:
    """KF013: the same namespace/name defined more than once (inventories built in code)."""
    seen: dict[str, NetworkPolicy] = {}
    for policy in ctx.inventory.policies:
        first = seen.get(policy.key)
        if first is None:
            seen[policy.key] = policy
            continue
        where = str(first.origin) if first.origin is not None else "another document"
        yield ctx.finding(
            "KF013", _duplicate_message(policy.key, where), policy=policy, path="metadata.name"
        )


def split_duplicate_policies(
    documents: Sequence[Document], *, default_namespace: str = "default"
) -> tuple[list[Document], list[Finding]]:
    """KF013 for manifest files: set aside every later top-level NetworkPolicy document whose
    namespace/name an earlier one already defined, and report it.

    The loader rejects such input outright (an API server would keep only the last one); the
    audit reports it as a finding instead, so CI annotates both places and the rest of the
    input is still analysed. Duplicates inside ``kind: List`` are left to the loader.
    """
    kept: list[Document] = []
    findings: list[Finding] = []
    seen: dict[str, str] = {}
    meta = RULES_BY_ID["KF013"]
    for doc in documents:
        object_key = doc.key(default_namespace=default_namespace)
        if object_key is None or object_key.kind != "NetworkPolicy":
            kept.append(doc)
            continue
        key = f"{object_key.namespace}/{object_key.name}"
        where = f"{doc.file}:{doc.line}" if doc.line is not None else doc.file
        first = seen.get(key)
        if first is None:
            seen[key] = where
            kept.append(doc)
            continue
        findings.append(
            Finding(
                rule="KF013",
                severity=meta.severity,
                message=_duplicate_message(key, first),
                fix=meta.fix,
                namespace=key.split("/", 1)[0],
                object=f"NetworkPolicy {key}",
                path="metadata.name",
                file=doc.file,
                line=doc.line,
            )
        )
    return kept, findings


_CHECKS = (
    _and_or_near_miss,
    _policy_selects_no_pod,
    _peer_matches_nothing,
    _named_port_undeclared,
    _egress_without_dns,
    _ipblock_targets_service,
    _ipblock_covers_pods,
    _spoofable_namespace_selector,
    _no_default_deny,
    _allow_all_rule,
    _redundant_rule,
    _duplicate_policy_name,
)


def lint(inventory: Inventory, *, options: LintOptions | None = None) -> tuple[Finding, ...]:
    """Every finding for ``inventory``, sorted by file, line, object, path and rule id."""
    opts = options or LintOptions()
    known = {n.name for n in inventory.namespaces} | {p.namespace for p in inventory.pods}
    known |= {p.namespace for p in inventory.policies}
    ctx = _Context(
        inventory=inventory,
        options=opts,
        index=index_for(inventory),
        namespaces=tuple(sorted(known)),
    )
    found = {f for check in _CHECKS for f in check(ctx)}
    return tuple(sorted(found, key=Finding.sort_key))
