"""``kubefence validate``: would a real API server accept these manifests?

Why this module exists: it is the command-line face of the loader. It prints a one-line summary
and exits 0, or lists every problem, one per line with file, line, object and field path, and
exits 2. ``-v`` adds the notes (implicit namespaces, masked CIDRs, finished pods) and skipped
kinds; ``-o json`` gives the same as data for scripts.
"""

from __future__ import annotations

import sys

from kubefence.cli._inputs import add_input_arguments, inventory_from_args
from kubefence.cli._render_table import counted
from kubefence.cli.main import EXIT_INPUT, EXIT_OK

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see cli/main.py)
if TYPE_CHECKING:
    import argparse

    from kubefence.api import Inventory
    from kubefence.errors import FieldError

NAME = "validate"
HELP = (
    "check manifests as strictly as the Kubernetes API server; list every problem with file, "
    "line and field path (exit 2), or print a summary (exit 0)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(parser)
    parser.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="output format (default: %(default)s)",
    )


def summary(inventory: Inventory) -> str:
    """``ok: 3 namespaces, 5 pods, 2 policies (1 namespace created implicitly; skipped: ...)``."""
    parts = [
        counted(len(inventory.namespaces), "namespace"),
        counted(len(inventory.pods), "pod"),
        counted(len(inventory.policies), "policy", "policies"),
    ]
    if inventory.services:
        parts.append(counted(len(inventory.services), "service"))
    if inventory.admin_policies:
        parts.append(counted(len(inventory.admin_policies), "cluster policy", "cluster policies"))
    if inventory.nodes:
        parts.append(counted(len(inventory.nodes), "node"))
    extras = []
    implicit = sum(1 for ns in inventory.namespaces if ns.implicit)
    if implicit:
        extras.append(f"{counted(implicit, 'namespace')} created implicitly")
    if inventory.skipped:
        kinds = ", ".join(f"{count} {kind}" for kind, count in inventory.skipped.items())
        extras.append(f"skipped: {kinds}")
    tail = f" ({'; '.join(extras)})" if extras else ""
    return f"ok: {', '.join(parts)}{tail}"


def _problem_json(problem: FieldError) -> dict[str, object]:
    return {
        "file": problem.file,
        "line": problem.line,
        "object": problem.object,
        "path": problem.path,
        "message": problem.message,
    }


def _inventory_json(inventory: Inventory) -> dict[str, object]:
    return {
        "valid": True,
        "namespaces": len(inventory.namespaces),
        "pods": len(inventory.pods),
        "policies": len(inventory.policies),
        "services": len(inventory.services),
        "clusterPolicies": len(inventory.admin_policies),  # the admin tiers' kinds
        "nodes": len(inventory.nodes),
        "implicitNamespaces": [ns.name for ns in inventory.namespaces if ns.implicit],
        "skipped": dict(inventory.skipped),
        "notes": list(inventory.notes),
    }


def run(args: argparse.Namespace) -> int:
    from kubefence.errors import ValidationError

    try:
        inventory = inventory_from_args(args)
    except ValidationError as exc:
        if args.output == "json":
            import json  # only here and below: the text output needs none of it

            document = {"valid": False, "problems": [_problem_json(p) for p in exc.problems]}
            print(json.dumps(document, indent=2))
        else:
            for problem in exc.problems:
                print(problem)
            count = len(exc.problems)
            print(f"invalid: {counted(count, 'problem')}", file=sys.stderr)
        return EXIT_INPUT
    if args.output == "json":
        import json

        print(json.dumps(_inventory_json(inventory), indent=2))
        return EXIT_OK
    print(summary(inventory))
    if args.verbose:
        for kind, count in inventory.skipped.items():
            print(f"skipped: {count} {kind} (kubefence does not read this kind)")
        for note in inventory.notes:
            print(f"note: {note}")
    return EXIT_OK
