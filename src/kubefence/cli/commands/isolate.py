"""``kubefence isolate``: print ready-to-apply isolation policies, or preview their effect.

Why this module exists: it is the command-line face of ``kubefence.audit.isolation_policies``.
Every generated manifest is loaded back through the same validation as ``kubefence validate``
before it is printed, so the command never emits YAML an API server would reject (a bad
namespace name exits 2). ``--check -f EXISTING...`` prints, instead of YAML, the namespace
summary (isolation coverage and reachability) before and after adding the policies.

``--tier baseline`` generates Baseline-tier ClusterNetworkPolicies instead of NetworkPolicies
(one per namespace: ``audit/_isolate.py`` says why one object cannot isolate two namespaces from
each other); without ``-n`` it isolates every namespace of the ``-f`` input that has the
``--tenant-label`` label. ``--check`` reads tiered input: the reachability comes from the
engine, which evaluates every tier, and with tiered policies the isolation columns count what
the tiers isolate (a Deny rule selecting the pod) and open (an Admin Accept), see
``audit/_tier_isolation.py``.
"""

from __future__ import annotations

import argparse
import sys

from kubefence.cli._render_table import aligned

# yaml, the API and ``kubefence.audit`` (which imports the engine, so numpy) are imported by the
# function that uses them, so that ``kubefence --help``, which imports this module for its NAME
# and HELP, does not pay for them.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see cli/main.py)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from kubefence.audit import AuditReport, NamespaceReport, TierIsolation

__all__ = ["HELP", "NAME", "add_arguments", "render_check", "run"]

NAME = "isolate"
HELP = (
    "generate isolation policies (default deny, allow within the namespace, DNS, named "
    "namespaces) as YAML; --check -f shows the namespace summary before and after"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-n",
        "--namespace",
        dest="namespaces",
        action="append",
        nargs="+",
        default=[],
        metavar="NS",
        help="namespace(s) to isolate; repeatable (required unless --tier baseline "
        "--tenant-label KEY -f ... names them)",
    )
    parser.add_argument(
        "--tier",
        choices=("namespace", "baseline"),
        default="namespace",
        help="namespace: NetworkPolicies in each namespace (default); baseline: Baseline-tier "
        "ClusterNetworkPolicies (one per namespace) that tenants' NetworkPolicies may override",
    )
    parser.add_argument(
        "--tenant-label",
        metavar="KEY",
        help="with --tier baseline and no -n: isolate every namespace of the -f input that "
        "has the label KEY",
    )
    parser.add_argument(
        "--priority",
        type=int,
        default=1000,
        metavar="N",
        help="with --tier baseline: the policies' priority (0-1000, default 1000: after the "
        "other Baseline policies)",
    )
    parser.add_argument(
        "--egress",
        action="store_true",
        help="isolate egress too (pods may then connect only within the namespace, plus DNS "
        "with --allow-dns)",
    )
    parser.add_argument(
        "--allow-dns",
        action="store_true",
        help="with --egress: allow 53/UDP and 53/TCP to kube-dns and NodeLocal DNS (169.254.20.10)",
    )
    parser.add_argument(
        "--allow-from-namespace",
        dest="allow_from",
        action="append",
        default=[],
        metavar="NS",
        help="let every pod of NS connect in (e.g. an ingress controller); repeatable",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="instead of YAML, print the namespace summary before and after adding the "
        "policies to the manifests given with -f",
    )
    parser.add_argument(
        "-f",
        "--filename",
        dest="filenames",
        action="append",
        metavar="PATH",
        help="existing manifests for --check (files, directories or '-'); repeatable",
    )


def run(args: argparse.Namespace) -> int:
    import yaml

    from kubefence.api import Inventory
    from kubefence.audit import build_report, isolation_policies
    from kubefence.errors import InputError
    from kubefence.sources.files import load_paths
    from kubefence.sources.objects import inventory_from_objects

    namespaces = [ns for group in args.namespaces for ns in group]
    baseline = args.tier == "baseline"
    existing = load_paths(list(args.filenames)) if args.filenames else None
    if not namespaces:
        if not (baseline and args.tenant_label and existing is not None):
            raise InputError(
                "name the namespaces with -n NS, or use --tier baseline --tenant-label KEY -f "
                "PATH to isolate every namespace labelled KEY"
            )
        namespaces = [
            n
            for n in sorted(
                {x.name for x in existing.namespaces} | existing.pods_by_namespace.keys()
            )
            if args.tenant_label in existing.namespace_labels(n)
        ]
        if not namespaces:
            raise InputError(f"no namespace of the input has the label {args.tenant_label}")
    elif args.tenant_label:
        raise InputError("--tenant-label chooses the namespaces: give it or -n, not both")
    if args.allow_dns and not args.egress:
        print(
            "kubefence: note: --allow-dns adds nothing without --egress (DNS is only "
            "restricted when egress is isolated)",
            file=sys.stderr,
        )
    objects = isolation_policies(
        namespaces,
        allow_dns=args.allow_dns,
        egress=args.egress,
        allow_from=args.allow_from,
        tier="Baseline" if baseline else "NetworkPolicy",
        priority=args.priority,
    )
    generated = inventory_from_objects(objects)  # the same validation as `kubefence validate`
    if not args.check:
        sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False, explicit_start=True))
        return 0
    if existing is None:
        raise InputError("--check needs the existing manifests: -f PATH")
    taken = {p.key for p in existing.policies} | {p.key for p in existing.admin_policies}
    made = [p.key for p in generated.policies] + [p.key for p in generated.admin_policies]
    clash = sorted(k for k in made if k in taken)
    if clash:
        raise InputError(f"policies already exist in the input: {', '.join(clash)}")
    merged = Inventory.of(
        namespaces=list(existing.namespaces)
        + [n for n in generated.namespaces if n.name not in existing.namespace_by_name],
        pods=existing.pods,
        services=existing.services,
        policies=list(existing.policies) + list(generated.policies),
        admin_policies=list(existing.admin_policies) + list(generated.admin_policies),
        nodes=existing.nodes,
    )
    before = build_report(existing)
    after = build_report(merged)
    tiers = None
    if merged.admin_policies:  # count what the tiers isolate and open too
        from kubefence.audit import tier_isolation

        tiers = (tier_isolation(existing), tier_isolation(merged))
    sys.stdout.write(render_check(before, after, namespaces, tiers=tiers) + "\n")
    return 0


def _change(before: Sequence[str] | None, after: Sequence[str], own: str) -> str:
    """``after`` without ``own``, then what changed: ``a, b (-c, +d)``."""
    now = [x for x in after if x != own]
    text = ", ".join(now) if now else "-"
    if before is None:
        return text
    was = [x for x in before if x != own]
    delta = [f"-{x}" for x in was if x not in now] + [f"+{x}" for x in now if x not in was]
    return f"{text} ({', '.join(delta)})" if delta else text


def _counts(
    before: NamespaceReport | None,
    after: NamespaceReport,
    direction: str,
    tiers: tuple[Mapping[str, TierIsolation], Mapping[str, TierIsolation]] | None,
) -> str:
    """``isolated before/pods -> after/pods``; with tiers, isolation counts tier Denies too,
    and pods an Admin Accept opens follow (``; admin opens 0 -> 2``) when there are any."""
    pods = after.pods
    if tiers is None:
        was = getattr(before, f"{direction}_isolated") if before else 0
        return f"{was}/{pods} -> {getattr(after, f'{direction}_isolated')}/{pods}"
    old, new = tiers[0].get(after.name), tiers[1].get(after.name)
    was = getattr(old, f"{direction}_isolated") if old else 0
    now = getattr(new, f"{direction}_isolated") if new else 0
    text = f"{was}/{pods} -> {now}/{pods}"
    opened_was = getattr(old, f"{direction}_opened") if old else 0
    opened = getattr(new, f"{direction}_opened") if new else 0
    if opened_was or opened:
        text += f"; admin opens {opened_was} -> {opened}"
    return text


def render_check(
    before: AuditReport,
    after: AuditReport,
    isolated: Sequence[str],
    *,
    tiers: tuple[Mapping[str, TierIsolation], Mapping[str, TierIsolation]] | None = None,
) -> str:
    """Side-by-side namespace summary: coverage and reachability, before -> after. With
    ``tiers`` (``tier_isolation`` before and after; given when the input has tiered
    policies) the coverage columns count what the Admin and Baseline tiers isolate and open."""
    old = {n.name: n for n in before.namespaces}
    rows: list[list[str]] = []
    for n in after.namespaces:
        b = old.get(n.name)
        mark = "*" if n.name in isolated else ""
        rows.append(
            [
                n.name + mark,
                _counts(b, n, "ingress", tiers),
                _counts(b, n, "egress", tiers),
                _change(b.reachable_from if b else None, n.reachable_from, n.name),
                _change(b.reaches if b else None, n.reaches, n.name),
            ]
        )
    header = ["NAMESPACE", "INGRESS ISOLATED", "EGRESS ISOLATED", "REACHABLE FROM", "REACHES"]
    lines = [
        "Namespace summary after adding the policies (* = given with -n; isolated pods "
        "before -> after; reachability on any port, (-lost, +gained))"
    ]
    if tiers is not None:
        lines.append(
            "Isolated: a NetworkPolicy isolates the pod, or an Admin or Baseline policy with a "
            "Deny rule in that direction selects it; admin opens: an Admin policy with an "
            "Accept rule in that direction selects it (decided before NetworkPolicy)"
        )
    return "\n".join(lines + aligned(header, rows, indent="  "))
