"""``kubefence diff``: the connections a change to the manifests opens and closes.

Why this module exists: the typical use is a pull request that edits policies. ``-f`` names the
current manifests, ``--against`` the proposed ones (both repeatable); the output lists every
(source, destination, port class) that becomes allowed (+) or denied (-), on every port, and
the pods present in one version only. ``--exit-code`` makes any change exit 1, for CI. ``-v``
explains each changed connection before and after, as ``kubefence explain`` would.
``-o connlist`` (and ``connlist-csv``, ``-json``, ``-md``) compares per workload pair in np-guard
netpol-analyzer's diff format (``kubefence.report``).
"""

from __future__ import annotations

import argparse
import sys

from kubefence.cli._inputs import (
    add_family_argument,
    add_input_arguments,
    add_settings_arguments,
    inventory_from_args,
    settings_from_args,
)

# The engine (numpy) and the semantics are imported by the functions that use them, so that
# ``kubefence --help``, which imports this module for its NAME and HELP, does not pay for them.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see cli/main.py)
if TYPE_CHECKING:
    from collections.abc import Sequence

    from kubefence.api import Inventory
    from kubefence.engine import Change, ReachabilityDiff
    from kubefence.semantics import Settings

NAME = "diff"
HELP = (
    "list the connections (source, destination, port) that become allowed or denied between "
    "the -f manifests and the --against manifests"
)

EXIT_CHANGED = 1
CONNLIST_FORMATS = {
    "connlist": "txt",
    "connlist-csv": "csv",
    "connlist-json": "json",
    "connlist-md": "md",
}
DIFF_MAX_PODS = 20_000  # the diff compares pods^2 cells per port class


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(
        parser,
        live=True,
        verbose_help="explain each changed connection before and after (table output), as "
        "'kubefence explain' would, on a port of its port class",
    )
    add_settings_arguments(parser)
    add_family_argument(parser)
    parser.add_argument(
        "--against",
        action="append",
        required=True,
        metavar="PATH",
        help="the new manifests (file, directory or '-'); repeatable",
    )
    parser.add_argument(
        "--protocol",
        help="only this protocol (default: TCP and every protocol the policies mention)",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=("table", "json", *CONNLIST_FORMATS),
        default="table",
        help="default: table; connlist, connlist-csv, connlist-json, connlist-md: changed, "
        "added and removed connections per workload pair, as netpol-analyzer's diff prints them",
    )
    parser.add_argument(
        "--exit-code", action="store_true", help="exit 1 when anything changed (like git diff)"
    )


def _grouped(changes: Sequence[Change]) -> list[tuple[bool, str, str, list[str]]]:
    """One entry per (direction, src, dst) with every port class it changes on."""
    grouped: dict[tuple[bool, str, str], list[str]] = {}
    for c in changes:
        grouped.setdefault((c.allowed, c.src, c.dst), []).append(f"{c.port}/{c.protocol}")
    return [(allowed, src, dst, ports) for (allowed, src, dst), ports in grouped.items()]


def render_table(diff: ReachabilityDiff) -> str:
    added, removed = len(diff.newly_allowed), len(diff.newly_denied)
    if not diff.changed:
        return "no change: every connection keeps its verdict on every port\n"
    lines = [
        f"{added} connection{'s' if added != 1 else ''} become{'s' if added == 1 else ''} "
        f"allowed, {removed} become{'s' if removed == 1 else ''} denied "
        f"(over {len(diff.port_classes)} port classes)"
    ]
    for allowed, src, dst, ports in _grouped(diff.changes):
        sign = "+ allow" if allowed else "- deny "
        lines.append(f"{sign}  {src} -> {dst}  on {', '.join(ports)}")
    if diff.only_old:
        lines.append(f"pods only in the old manifests: {', '.join(diff.only_old)}")
    if diff.only_new:
        lines.append(f"pods only in the new manifests: {', '.join(diff.only_new)}")
    return "\n".join(lines) + "\n"


def render_explanations(
    diff: ReachabilityDiff, *, old: Inventory, new: Inventory, settings: Settings
) -> str:
    """``-v``: each change with the reference evaluator's explanation in both versions, on
    the representative port of its port class (any port of the class answers the same)."""
    from kubefence.cli._render_decision import render_text
    from kubefence.semantics import decide

    classes = {(pc.protocol, pc.label): pc for pc in diff.port_classes}
    lines: list[str] = []
    for change in diff.changes:
        pc = classes[(change.protocol, change.port)]
        ports = (
            f"every {pc.protocol} port no policy names, e.g. {pc.port}"
            if pc.other
            else f"{pc.label}/{pc.protocol}"
        )
        before, after = ("denied", "allowed") if change.allowed else ("allowed", "denied")
        lines.append("")
        lines.append(f"{change.src} -> {change.dst} on {ports}: {before} -> {after}")
        for name, inventory in (("before", old), ("after", new)):
            decision = decide(
                inventory,
                change.src,
                change.dst,
                port=pc.port,
                protocol=pc.protocol,
                settings=settings,
            )
            head, *rest = render_text(decision).splitlines()
            lines.append(f"  {name}: {head}")
            lines += [f"  {line}" for line in rest]
    return "\n".join(lines) + "\n" if lines else ""


def render_json(diff: ReachabilityDiff) -> str:
    import json

    def item(c: Change) -> dict[str, str]:
        return {"from": c.src, "to": c.dst, "port": c.port, "protocol": str(c.protocol)}

    doc = {
        "changed": diff.changed,
        "allowed": [item(c) for c in diff.newly_allowed],
        "denied": [item(c) for c in diff.newly_denied],
        "onlyOld": list(diff.only_old),
        "onlyNew": list(diff.only_new),
        "portClasses": [{"port": p.label, "protocol": str(p.protocol)} for p in diff.port_classes],
    }
    return json.dumps(doc, indent=2) + "\n"


def run(args: argparse.Namespace) -> int:
    from kubefence.engine import diff_inventories
    from kubefence.errors import InputError
    from kubefence.semantics import parse_protocol

    old = inventory_from_args(args, command="diff")
    new_args = argparse.Namespace(
        filenames=args.against,
        namespace=args.namespace,
        family=args.family,
        no_strict=args.no_strict,
    )
    new = inventory_from_args(new_args, command="diff")
    largest = max(len(old.pods), len(new.pods))
    if largest > DIFF_MAX_PODS:
        raise InputError(
            f"{largest:,} pods are too many for a pod-by-pod diff ({DIFF_MAX_PODS:,} at most); "
            "diff the namespaces that changed"
        )
    protocols = [parse_protocol(args.protocol)] if args.protocol else None
    settings = settings_from_args(args)
    if args.output in CONNLIST_FORMATS:
        from kubefence.report import connlist_diff, render_connlist_diff

        wl = connlist_diff(old, new, protocols=protocols, settings=settings)
        sys.stdout.write(render_connlist_diff(wl, CONNLIST_FORMATS[args.output]))
        return EXIT_CHANGED if args.exit_code and wl.rows else 0
    diff = diff_inventories(old, new, protocols=protocols, settings=settings)
    if args.output == "json":
        sys.stdout.write(render_json(diff))
    else:
        sys.stdout.write(render_table(diff))
        if args.verbose:
            sys.stdout.write(render_explanations(diff, old=old, new=new, settings=settings))
    return EXIT_CHANGED if args.exit_code and diff.changed else 0
