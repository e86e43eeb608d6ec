"""``kubefence matrix``: who may connect to whom, for every pod pair, on one port or all of them.

Why this module exists: it is the command-line face of the vectorised engine. With ``--port`` it
prints one matrix (``-o json``: DESIGN.md's object); without, it prints one matrix per port
class the policies mention plus "other" (``-o json``: a list of those objects), which together
answer for every port. Tables switch to a per-namespace summary beyond 40 pods unless
``--per-pod``.
"""

from __future__ import annotations

import argparse
import sys

from kubefence.cli._inputs import (
    add_input_arguments,
    add_settings_arguments,
    inventory_from_args,
    settings_from_args,
)
from kubefence.cli._render_matrix import (
    render_csv,
    render_dot,
    render_json,
    render_markdown,
    render_table,
)
from kubefence.engine import Matrix, ReachabilityAnalysis, port_classes
from kubefence.errors import InputError
from kubefence.semantics import parse_port, parse_protocol

NAME = "matrix"
HELP = (
    "compute whether each pod may connect to each other pod, on one port or on every port "
    "class the policies mention"
)

FORMATS = ("table", "json", "csv", "md", "dot")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(parser)
    add_settings_arguments(parser)
    parser.add_argument(
        "--port",
        help="destination port: a number or a container port name (resolved per destination); "
        "default: every port class the policies mention, plus all other ports",
    )
    parser.add_argument(
        "--protocol",
        help="TCP, UDP or SCTP (default: TCP with --port; without it, every protocol mentioned)",
    )
    parser.add_argument(
        "-o", "--output", choices=FORMATS, default="table", help="output format (default: table)"
    )
    parser.add_argument(
        "--per-pod",
        action="store_true",
        default=None,
        help="always show every pod (tables otherwise summarise per namespace beyond 40 pods)",
    )


def compute(
    analysis: ReachabilityAnalysis, *, port: str | None, protocol: str | None
) -> list[Matrix]:
    """The matrices the options ask for (one for ``port``, else one per port class)."""
    if port is not None:
        wanted = parse_port(port)
        return [analysis.matrix(wanted, parse_protocol(protocol or "TCP"), label=str(wanted))]
    protocols = [parse_protocol(protocol)] if protocol else None
    classes = port_classes([analysis.inventory], protocols=protocols)
    return [analysis.matrix(c.port, c.protocol, label=c.label) for c in classes]


# Per-pod output holds pods^2 cells; beyond this many pods it would not fit in memory or be
# read by anyone, so those formats refuse and point at the per-namespace table.
PER_POD_MAX = 20_000


def run(args: argparse.Namespace) -> int:
    inventory = inventory_from_args(args, command="matrix", engine=True)
    output: str = args.output
    per_pod_output = output in ("json", "csv", "dot") or bool(args.per_pod)
    if per_pod_output and len(inventory.pods) > PER_POD_MAX:
        raise InputError(
            f"{len(inventory.pods):,} pods are too many for per-pod output ({PER_POD_MAX:,} at "
            "most): use -o table or -o md without --per-pod for the per-namespace summary"
        )
    matrices = compute(
        ReachabilityAnalysis(inventory, settings=settings_from_args(args)),
        port=args.port,
        protocol=args.protocol,
    )
    if output == "json":
        text = render_json(matrices, as_list=args.port is None)
    elif output == "csv":
        text = render_csv(matrices)
    elif output == "md":
        text = render_markdown(matrices, per_pod=args.per_pod)
    elif output == "dot":
        text = render_dot(matrices)
    else:
        text = render_table(matrices, per_pod=args.per_pod)
    sys.stdout.write(text)
    return 0
