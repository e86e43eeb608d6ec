"""``kubefence audit``: namespace isolation report and lint findings, as a table, JSON or SARIF.

Why this module exists: it is the command-line face of ``kubefence.audit`` for platform teams
and CI. It chooses what to compute (``--no-reachability`` skips the pairwise part), renders the
report (grouped table, stable JSON, SARIF 2.1.0 for code scanning) and turns findings at or above
``--fail-on`` into exit status 1.
"""

from __future__ import annotations

import argparse
import sys

from kubefence.cli._inputs import add_input_arguments, check_kinds, input_documents
from kubefence.cli._render_table import aligned

# ``kubefence.audit`` (which imports the engine, so numpy) and the API are imported by the
# functions that use them, so that ``kubefence --help``, which imports this module for its NAME
# and HELP, does not pay for them.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see cli/main.py)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from kubefence.api import Inventory, IPAddress, IPNetwork
    from kubefence.audit import AuditReport, Finding, NamespaceReport, PodPath

__all__ = ["HELP", "NAME", "add_arguments", "render_json", "render_table", "run"]

NAME = "audit"
HELP = (
    "namespace isolation report (coverage, reachability on any port, external ranges, "
    "cross-tenant paths) and lint findings with stable ids; table, JSON or SARIF"
)


def _network(text: str) -> IPNetwork:
    import ipaddress

    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a CIDR: {text!r}") from exc


def _address(text: str) -> IPAddress:
    import ipaddress

    try:
        return ipaddress.ip_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}") from exc


_LIBRARY_DEFAULT = -1  # --explain not given: build_report's own default


def _count(text: str) -> int | None:
    if text.strip().lower() == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a count: {text!r} (a number >= 0, or 'all')")
    return value


def _rule_id(text: str) -> str:
    from kubefence.audit import RULES_BY_ID

    rule = text.strip().upper()
    if rule not in RULES_BY_ID:
        raise argparse.ArgumentTypeError(
            f"unknown finding id {text!r} (known: {', '.join(sorted(RULES_BY_ID))})"
        )
    return rule


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from kubefence.audit import DEFAULT_SERVICE_CIDRS, NODE_LOCAL_DNS

    add_input_arguments(parser, live=True)
    parser.add_argument(
        "-o",
        "--output",
        choices=("table", "json", "sarif"),
        default="table",
        help="output format (default: %(default)s); sarif holds the findings only",
    )
    parser.add_argument(
        "--tenant-label",
        metavar="KEY",
        help="group namespaces into tenants by this namespace label and list every path "
        "between two different tenants with the policy rules that open it",
    )
    parser.add_argument(
        "--fail-on",
        choices=("error", "warning", "info"),
        help="exit 1 when a finding has at least this severity",
    )
    parser.add_argument(
        "--service-cidr",
        action="append",
        type=_network,
        metavar="CIDR",
        help="the cluster's Service range, for KF006; repeatable "
        f"(default: {', '.join(str(c) for c in DEFAULT_SERVICE_CIDRS)})",
    )
    parser.add_argument(
        "--pod-cidr",
        action="append",
        type=_network,
        metavar="CIDR",
        help="the cluster's pod range, for KF007 when the input has no pod addresses; repeatable",
    )
    parser.add_argument(
        "--node-local-dns",
        action="append",
        type=_address,
        metavar="IP",
        help=f"NodeLocal DNS address that counts as DNS for KF005 (default: {NODE_LOCAL_DNS})",
    )
    parser.add_argument(
        "--ignore",
        action="append",
        type=_rule_id,
        default=[],
        metavar="ID",
        help="leave out findings with this id (e.g. KF010); repeatable",
    )
    parser.add_argument(
        "--explain",
        type=_count,
        default=_LIBRARY_DEFAULT,
        metavar="N",
        help="list the opening policy rules for N example pod pairs, those of the largest "
        "cross-tenant namespace pairs first (default: 100; 'all' for every example)",
    )
    parser.add_argument(
        "--no-reachability",
        action="store_true",
        help="findings and coverage only: skip the pairwise reachability analysis",
    )


def run(args: argparse.Namespace) -> int:
    import json

    from kubefence import __version__
    from kubefence.audit import (
        DEFAULT_SERVICE_CIDRS,
        NODE_LOCAL_DNS,
        Finding,
        LintOptions,
        build_report,
        lint,
    )
    from kubefence.cli._sarif import sarif_log

    inventory, duplicates = _load(args)
    options = LintOptions(
        service_cidrs=tuple(args.service_cidr or DEFAULT_SERVICE_CIDRS),
        node_local_dns=tuple(args.node_local_dns or (NODE_LOCAL_DNS,)),
        pod_cidrs=tuple(args.pod_cidr or ()),
        tenant_label=args.tenant_label,
    )
    ignored = set(args.ignore)
    found = (*lint(inventory, options=options), *duplicates)
    findings = tuple(sorted((f for f in found if f.rule not in ignored), key=Finding.sort_key))
    if args.output == "sarif":
        out = json.dumps(sarif_log(findings, version=__version__), indent=2)
    else:
        explain = {} if args.explain == _LIBRARY_DEFAULT else {"explain": args.explain}
        report = build_report(
            inventory,
            tenant_label=args.tenant_label,
            reachability=not args.no_reachability,
            **explain,
        )
        if args.output == "json":
            out = json.dumps(render_json(findings, report), indent=2)
        else:
            out = render_table(findings, report)
    sys.stdout.write(out + "\n")
    if args.verbose:
        for note in inventory.notes:
            print(f"note: {note}", file=sys.stderr)
    return 1 if _fails(findings, args.fail_on) else 0


def _load(args: argparse.Namespace) -> tuple[Inventory, list[Finding]]:
    """Like every command's loading (``-f``/``-n``, or a live cluster), except that a
    NetworkPolicy defined twice becomes finding KF013 rather than an input error, so the rest
    is still audited."""
    from kubefence.api import build_inventory
    from kubefence.audit import split_duplicate_policies
    from kubefence.sources.files import read_documents

    live = input_documents(args)
    documents, problems = read_documents(list(args.filenames or [])) if live is None else (live, [])
    kept, duplicates = split_duplicate_policies(documents, default_namespace=args.namespace)
    inventory = build_inventory(kept, default_namespace=args.namespace, problems=problems)
    check_kinds(inventory, args, command="audit")
    return inventory, duplicates


def _fails(findings: Sequence[Finding], fail_on: str | None) -> bool:
    from kubefence.audit import Severity

    if fail_on is None:
        return False
    threshold = Severity(fail_on).rank
    return any(f.severity.rank >= threshold for f in findings)


# --- JSON -------------------------------------------------------------------------------------


def _finding_json(f: Finding) -> dict[str, Any]:
    from kubefence.audit import RULES_BY_ID

    return {
        "id": f.rule,
        "name": RULES_BY_ID[f.rule].name,
        "severity": f.severity.value,
        "file": f.file,
        "line": f.line,
        "object": f.object,
        "path": f.path or None,
        "namespace": f.namespace,
        "message": f.message,
        "fix": f.fix,
    }


def _namespace_json(n: NamespaceReport, reachability: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": n.name,
        "tenant": n.tenant,
        "pods": n.pods,
        "ingress_isolated": n.ingress_isolated,
        "egress_isolated": n.egress_isolated,
    }
    if reachability:
        out["reachable_from"] = list(n.reachable_from)
        out["reaches"] = list(n.reaches)
    out["external_ingress"] = [
        {"range": e.range, "ports": e.ports, "via": e.via} for e in n.external_ingress
    ]
    out["external_egress"] = [
        {"range": e.range, "ports": e.ports, "via": e.via} for e in n.external_egress
    ]
    return out


def _pod_path_json(p: PodPath) -> dict[str, Any]:
    return {
        "source": p.source,
        "destination": p.destination,
        "ports": list(p.ports),
        "opened_by": [str(o) for o in p.opened_by],
        "explained": p.explained,
    }


def render_json(findings: Sequence[Finding], report: AuditReport) -> dict[str, Any]:
    """The stable JSON document of ``audit -o json``."""
    from kubefence.audit import Severity

    counts = {s.value: sum(1 for f in findings if f.severity is s) for s in Severity}
    doc: dict[str, Any] = {
        "summary": counts,
        "findings": [_finding_json(f) for f in findings],
        "namespaces": [_namespace_json(n, report.reachability) for n in report.namespaces],
    }
    if report.reachability:
        doc["matrix"] = {
            "namespaces": list(report.names),
            "rows": ["".join("1" if cell else "0" for cell in row) for row in report.matrix],
        }
    if report.tenant_label is not None:
        doc["tenant_label"] = report.tenant_label
        doc["cross_tenant_paths"] = [_pod_path_json(p) for p in report.cross_tenant]
        doc["cross_tenant_namespace_pairs"] = [
            {
                "source": p.source,
                "destination": p.destination,
                "source_tenant": p.source_tenant,
                "destination_tenant": p.destination_tenant,
                "pod_pairs": p.pod_pairs,
                "workload_pairs": p.workload_pairs,
                "ports": list(p.ports),
                "workloads": [
                    {
                        "source": w.source,
                        "destination": w.destination,
                        "pod_pairs": w.pod_pairs,
                        "ports": list(w.ports),
                        "example": _pod_path_json(w.example),
                    }
                    for w in p.workloads
                ],
            }
            for p in report.tenant_paths
        ]
    return doc


# --- table ------------------------------------------------------------------------------------


def _findings_table(findings: Sequence[Finding]) -> list[str]:
    from kubefence.audit import RULES_BY_ID, Severity

    counts = {s: sum(1 for f in findings if f.severity is s) for s in Severity}
    lines = [
        f"Findings: {counts[Severity.ERROR]} error(s), {counts[Severity.WARNING]} warning(s), "
        f"{counts[Severity.INFO]} info"
    ]
    current: str | None = None
    for f in findings:
        group = f.file or "(no file)"
        if group != current:
            lines.append(f"  {group}")
            current = group
        where = f"{f.line}:" if f.line is not None else "-:"
        subject = " ".join(p for p in (f.object, f.path) if p)
        lines.append(
            f"    {where:<5} {f.severity.value:<7} {f.rule} {RULES_BY_ID[f.rule].name}: {subject}"
        )
        lines.append(f"          {f.message}")
        lines.append(f"          fix: {f.fix}")
    return lines


def _names(items: Sequence[str]) -> str:
    return ", ".join(items) if items else "-"


def _cross_tenant_table(report: AuditReport) -> list[str]:
    paths = report.tenant_paths
    total = sum(p.pod_pairs for p in paths)
    lines = [
        f"Cross-tenant paths (tenant label {report.tenant_label}): {total} pod pair(s) "
        f"between {len(paths)} namespace pair(s)"
    ]
    if not paths:
        lines.append("  none: no pod of one tenant may connect to a pod of another")
    unexplained = 0
    for p in paths:
        lines.append(
            f"  {p.source} ({p.source_tenant}) -> {p.destination} ({p.destination_tenant}): "
            f"{p.pod_pairs} pod pair(s)"
            + (f" in {p.workload_pairs} workload pair(s)" if p.workload_pairs > 1 else "")
            + (f" on {', '.join(p.ports)}" if p.workload_pairs > len(p.workloads) else "")
        )
        for w in p.workloads:
            ex = w.example
            line = f"    {ex.source} -> {ex.destination} on {', '.join(ex.ports)}"
            if w.pod_pairs > 1:
                line += f" (1 of {w.pod_pairs}: {w.source} -> {w.destination})"
            lines.append(line)
            lines += [f"        {opening}" for opening in ex.opened_by]
            unexplained += not ex.explained
        hidden = p.workload_pairs - len(p.workloads)
        if hidden:
            rest = p.pod_pairs - sum(w.pod_pairs for w in p.workloads)
            lines.append(f"    ... {hidden} more workload pair(s), {rest} pod pair(s)")
    if unexplained:
        shown = sum(len(p.workloads) for p in paths)
        lines.append(
            f"  (rules listed for {shown - unexplained} of {shown} examples, those of the "
            "namespace pairs with the most pod pairs: --explain N or all lists more, "
            "`kubefence explain` any pair)"
        )
    return lines


def render_table(findings: Sequence[Finding], report: AuditReport) -> str:
    """The human-readable report: findings by file, then namespaces, ranges, matrix, tenants."""
    lines = _findings_table(findings)
    lines.append("")
    lines.append("Namespaces (isolated pods / pods, per direction)")
    header = ["NAMESPACE", "TENANT", "PODS", "INGRESS", "EGRESS"]
    if report.reachability:
        header += ["REACHABLE FROM", "REACHES"]
    rows = []
    for n in report.namespaces:
        row = [
            n.name,
            n.tenant or "-",
            str(n.pods),
            f"{n.ingress_isolated}/{n.pods}",
            f"{n.egress_isolated}/{n.pods}",
        ]
        if report.reachability:
            row += [
                _names([x for x in n.reachable_from if x != n.name]),
                _names([x for x in n.reaches if x != n.name]),
            ]
        rows.append(row)
    lines += aligned(header, rows, indent="  ")
    lines.append("")
    lines.append("External address ranges (ingress: may connect in; egress: may be reached)")
    ext_rows = [
        [n.name, direction, e.range, e.ports, e.via]
        for n in report.namespaces
        for direction, items in (("ingress", n.external_ingress), ("egress", n.external_egress))
        for e in items
    ]
    if ext_rows:
        lines += aligned(["NAMESPACE", "DIRECTION", "RANGE", "PORTS", "VIA"], ext_rows, indent="  ")
    else:
        lines.append("  none (no pods in the input)")
    if report.reachability and not any(n.pods for n in report.namespaces):
        lines.append("")
        lines.append(
            "Reachability: no pods in the input (add Pod or workload manifests to see which "
            "namespaces and tenants can reach each other)"
        )
    elif report.reachability:
        lines.append("")
        lines.append("Namespace reachability on any port (row may connect to column)")
        names = report.names
        lines += aligned(
            ["FROM \\ TO", *names],
            [
                [a, *("yes" if cell else "." for cell in row)]
                for a, row in zip(names, report.matrix, strict=True)
            ],
            indent="  ",
        )
        if report.tenant_label is not None:
            lines.append("")
            lines += _cross_tenant_table(report)
    return "\n".join(lines)
