"""``kubefence matrix``: who may connect to whom, for every pod pair, on one port or all of them.

Why this module exists: it is the command-line face of the vectorised engine. With ``--port`` it
prints one matrix (``-o json``: docs/matrix-json.md); without, it prints one matrix per port
class the policies mention plus "other" (``-o json``: a list of those objects), which together
answer for every port. Tables switch to a per-namespace summary beyond 40 pods unless
``--per-pod``. ``-o connlist`` (and ``connlist-csv``, ``-json``, ``-md``) prints one line per
workload pair in np-guard netpol-analyzer's format (``kubefence.report``); without ``--port``
and ``--protocol`` it covers every port of all three protocols, so it can say
``All Connections``. On a terminal, a run that takes over half a second shows a progress bar
over the port classes on stderr (not with ``-o json`` or ``-v``; ``cli._progress``).
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager

from kubefence.cli._inputs import (
    add_family_argument,
    add_input_arguments,
    add_settings_arguments,
    inventory_from_args,
    settings_from_args,
)
from kubefence.cli._render_table import counted

# The engine (numpy), the semantics and the renderers are imported by the functions that use
# them, so that ``kubefence --help`` and other commands, which import this module for its
# NAME and HELP, do not pay for them.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see cli/main.py)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator

    from kubefence.api import Inventory
    from kubefence.cli._progress import Progress
    from kubefence.engine import Matrix, ReachabilityAnalysis

NAME = "matrix"
HELP = (
    "compute whether each pod may connect to each other pod, on one port or on every port "
    "class the policies mention"
)

CONNLIST_FORMATS = {
    "connlist": "txt",
    "connlist-csv": "csv",
    "connlist-json": "json",
    "connlist-md": "md",
}
FORMATS = ("table", "json", "csv", "md", "dot", *CONNLIST_FORMATS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(
        parser,
        live=True,
        verbose_help="report on stderr the pod classes and port classes computed and the time "
        "each phase took (load, prepare, each matrix, render)",
    )
    add_settings_arguments(parser)
    add_family_argument(parser)
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
    analysis: ReachabilityAnalysis,
    *,
    port: str | None,
    protocol: str | None,
    log: _Log | None = None,
    progress: Progress | None = None,
) -> list[Matrix]:
    """The matrices the options ask for (one for ``port``, else one per port class);
    ``progress`` counts the port classes done."""
    from kubefence.engine import port_classes
    from kubefence.semantics import parse_port, parse_protocol

    if port is not None:
        wanted = parse_port(port)
        proto = parse_protocol(protocol or "TCP")
        with _timed(log, f"matrix {wanted}/{proto}"):
            return [analysis.matrix(wanted, proto, label=str(wanted))]
    protocols = [parse_protocol(protocol)] if protocol else None
    classes = port_classes([analysis.inventory], protocols=protocols)
    if log is not None:
        shown = counted(len(classes), "port class", "port classes")
        log.line(f"{shown} (each answers for all its ports):")
        for c in classes:
            span = (
                f"every {c.protocol} port no policy names, computed on {c.port}"
                if c.other
                else f"ports {c.low}-{c.high}"
                if c.low != c.high
                else f"port {c.low}"
            )
            log.line(f"  {c.label}/{c.protocol}: {span}")
    matrices = []
    if progress is not None:
        progress.total = len(classes)
    for c in classes:
        if progress is not None:
            progress.phase(f"port class {c.label}/{c.protocol}")
        with _timed(log, f"matrix {c.label}/{c.protocol}"):
            matrices.append(analysis.matrix(c.port, c.protocol, label=c.label))
        if progress is not None:
            progress.advance()
    return matrices


class _Log:
    """``-v``'s report: lines on stderr prefixed with the command, and the phases' times."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def line(self, text: str) -> None:
        print(f"kubefence matrix: {text}", file=sys.stderr)


@contextmanager
def _timed(log: _Log | None, phase: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    if log is not None:
        log.line(f"{phase}: {1000 * (time.perf_counter() - started):.1f} ms")


# Per-pod output holds pods^2 cells; beyond this many pods it would not fit in memory or be
# read by anyone, so those formats refuse and point at the per-namespace table.
PER_POD_MAX = 20_000


def run(args: argparse.Namespace) -> int:
    from kubefence.cli._progress import Progress
    from kubefence.cli._render_matrix import (
        render_csv,
        render_dot,
        render_json,
        render_markdown,
        render_table,
    )
    from kubefence.engine import ReachabilityAnalysis
    from kubefence.errors import InputError

    log = _Log() if args.verbose else None
    with _timed(log, "load and validate the manifests"):
        inventory = inventory_from_args(args, command="matrix")
    if log is not None:
        family = f" (IPv{args.family[-1]} addresses only)" if args.family else ""
        log.line(
            f"{counted(len(inventory.pods), 'pod')} in "
            f"{counted(len(inventory.namespaces), 'namespace')}, "
            f"{counted(len(inventory.policies), 'policy', 'policies')}{family}"
        )
    output: str = args.output
    if output in CONNLIST_FORMATS:
        return _run_connlist(args, inventory, log=log)
    per_pod_output = output in ("json", "csv", "dot") or bool(args.per_pod)
    if per_pod_output and len(inventory.pods) > PER_POD_MAX:
        raise InputError(
            f"{len(inventory.pods):,} pods are too many for per-pod output ({PER_POD_MAX:,} at "
            "most): use -o table or -o md without --per-pod for the per-namespace summary"
        )
    with _timed(log, "prepare (pod classes, policies compiled)"):
        analysis = ReachabilityAnalysis(inventory, settings=settings_from_args(args))
    if log is not None:
        shown = counted(analysis.classes.count, "pod class", "pod classes")
        log.line(f"{shown} (pods every policy treats alike; the engine computes on classes)")
    # A bar on a TTY only, never with machine output (-o json) or -v's own log lines.
    with Progress("kubefence matrix", enabled=output != "json" and log is None) as progress:
        matrices = compute(
            analysis, port=args.port, protocol=args.protocol, log=log, progress=progress
        )
    rendered = time.perf_counter()
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
    if log is not None:
        log.line(f"render {output}: {1000 * (time.perf_counter() - rendered):.1f} ms")
    sys.stdout.write(text)
    if log is not None:
        log.line(f"total: {1000 * (time.perf_counter() - log.started):.1f} ms")
    return 0


def _run_connlist(args: argparse.Namespace, inventory: Inventory, *, log: _Log | None) -> int:
    """``-o connlist*``: the workload pairs and their allowed ports (``kubefence.report``)."""
    from kubefence.engine import ReachabilityAnalysis
    from kubefence.errors import InputError
    from kubefence.report import connlist, render_connlist, workload_of
    from kubefence.semantics import parse_port, parse_protocol

    workloads = len({workload_of(p) for p in inventory.pods})
    if workloads > PER_POD_MAX:
        raise InputError(
            f"{workloads:,} workloads are too many for a connection list ({PER_POD_MAX:,} at "
            "most): use -o table or -o md for the per-namespace summary"
        )
    analysis = ReachabilityAnalysis(inventory, settings=settings_from_args(args))
    with _timed(log, "connection list (every port class, per workload pair)"):
        conns = connlist(
            inventory,
            port=parse_port(args.port) if args.port is not None else None,
            protocols=[parse_protocol(args.protocol)] if args.protocol else None,
            analysis=analysis,
        )
    sys.stdout.write(render_connlist(conns, CONNLIST_FORMATS[args.output]))
    return 0
