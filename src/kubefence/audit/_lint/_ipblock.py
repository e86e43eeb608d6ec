"""Lint checks on ipBlock peers: KF006 (a block on Service ClusterIPs or the Service range,
S22) and KF007 (a block covering pod addresses, S15).

Why this module exists: both compare the addresses a block really holds (its CIDR minus every
``except``) with ranges the manifests do not describe as such: the Service range, ClusterIPs,
pod IPs and the pod range.
"""

from __future__ import annotations

from collections.abc import Iterator

from kubefence.api import IPBlock, IPNetwork
from kubefence.audit._common import describe_block
from kubefence.audit._findings import Finding, Severity
from kubefence.audit._lint._context import LintContext, directions, peer_path
from kubefence.semantics import (
    CompiledPolicy,
    PeerKind,
    block_intervals,
    ip_in_block,
    network_interval,
    subtract,
)

__all__ = [
    "block_covers",
    "block_overlaps",
    "block_within",
    "ipblock_covers_pods",
    "ipblock_targets_service",
]


def _ip_blocks(ctx: LintContext) -> Iterator[tuple[CompiledPolicy, str, IPBlock]]:
    for compiled in ctx.compiled:
        for direction, rules in directions(compiled):
            for rule in rules:
                for peer in rule.peers:
                    if peer.kind is PeerKind.IP_BLOCK and peer.ip_block is not None:
                        path = peer_path(direction, rule.index, peer.index)
                        yield compiled, f"{path}.ipBlock", peer.ip_block


def block_overlaps(block: IPBlock, network: IPNetwork) -> bool:
    """Does ``block`` (cidr minus excepts) share an address with ``network``?"""
    if block.cidr.version != network.version:
        return False
    whole = network_interval(network)
    return subtract((whole,), block_intervals(block)) != (whole,)


def block_within(block: IPBlock, network: IPNetwork) -> bool:
    """Does every address of ``block`` lie in ``network``? A block whose excepts remove every
    address is within the networks that hold its CIDR."""
    if block.cidr.version != network.version:
        return False
    addresses = block_intervals(block)
    if not addresses:
        return block.cidr.subnet_of(network)  # type: ignore[arg-type]
    return not subtract(addresses, (network_interval(network),))


def block_covers(wide: IPBlock, narrow: IPBlock) -> bool:
    """Does ``wide`` match every address ``narrow`` matches?"""
    if wide.cidr.version != narrow.cidr.version:
        return False
    return not subtract(block_intervals(narrow), block_intervals(wide))


def ipblock_targets_service(ctx: LintContext) -> Iterator[Finding]:
    """KF006: an ipBlock covering Service ClusterIPs or the Service range (S22)."""
    cluster_ips = [
        (svc, ip) for svc in ctx.inventory.services for ip in svc.cluster_ips if ip is not None
    ]
    for compiled, path, block in _ip_blocks(ctx):
        cidr = block.cidr
        if cidr.prefixlen == 0:
            continue  # "anywhere" is deliberate; it also covers pods and the internet
        inside = [s for s in ctx.options.service_cidrs if block_within(block, s)]
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
        overlapping = [s for s in ctx.options.service_cidrs if block_overlaps(block, s)]
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


def ipblock_covers_pods(ctx: LintContext) -> Iterator[Finding]:
    """KF007: an ipBlock (other than 0.0.0.0/0, ::/0) that matches known pod IPs, or that
    overlaps a pod CIDR given in the options (for inputs without pod addresses). The pods a
    block covers are found once per distinct block (7,000 policies repeat their blocks)."""
    pods_of: dict[IPBlock, list[str]] = {}
    for compiled, path, block in _ip_blocks(ctx):
        if block.cidr.prefixlen == 0:
            continue
        covered = pods_of.get(block)
        if covered is None:
            covered = pods_of[block] = [
                p.key
                for p in ctx.pods_with_address_in_block(block)  # bisect over sorted pod IPs
                if not p.host_network
            ]
        if covered:
            names = ", ".join(covered[:3]) + (", ..." if len(covered) > 3 else "")
            what = f"the addresses of {len(covered)} pod(s) ({names})"
        else:
            ranges = [str(c) for c in ctx.options.pod_cidrs if block_overlaps(block, c)]
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
