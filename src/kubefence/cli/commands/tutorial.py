"""``kubefence tutorial``: the namespace-isolation walk-through, on real packets when possible.

Why this module exists: it is the command-line face of ``kubefence.cli._tutorial`` — it picks
the data plane (the netns sandbox as root, else predictions only, clearly labelled), colour, and
makes sure the sandbox is taken down afterwards, also on Ctrl-C or SIGTERM, unless ``--keep``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from contextlib import contextmanager

# ``cli._tutorial`` (the API, the semantics, the data plane) is imported by the functions that
# use it, so that ``kubefence --help``, which imports this module for its NAME and HELP, does
# not pay for it.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see cli/main.py)
if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import FrameType

NAME = "tutorial"
HELP = (
    "replay the namespace-isolation walk-through (deny all, allow by label, by namespace AND "
    "label, default deny) on real packets in a sandbox; predictions only without root"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--step",
        type=int,
        metavar="N",
        help="show and check only step N (1-5); the manifests of the steps before it are "
        "applied silently, since each step builds on them",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the cluster (or sandbox) up afterwards and print how to explore it",
    )
    parser.add_argument(
        "--no-color", action="store_true", help="no ANSI colour (also off when not a terminal)"
    )
    parser.add_argument(
        "--name",
        default="tutorial",
        help="cluster or sandbox name (default: %(default)s); namespaces are kf-NAME-*. One of "
        "that name left up by an earlier run (--keep) is replaced",
    )
    parser.add_argument(
        "--on",
        choices=("cluster", "sandbox"),
        default="cluster",
        help="cluster (default): a sandbox cluster (API server, --nodes nodes with pods, "
        "Services and DNS, a policy agent per node) driven with the real kubectl, the guide's "
        "commands run literally; sandbox: the lighter network-namespace sandbox fed with the "
        "manifests, with the flow-log line of each dropped connection",
    )
    parser.add_argument(
        "--nodes",
        type=int,
        default=3,
        metavar="K",
        help="nodes of the sandbox cluster (default: %(default)s)",
    )
    parser.add_argument(
        "--predict-only",
        action="store_true",
        help="do not create a sandbox, even as root: show the predictions only",
    )
    parser.add_argument(
        "--examples",
        metavar="DIR",
        help="directory with the tutorial's manifests (default: examples/tutorial of the "
        "kubefence checkout)",
    )


def enforcement_unavailable() -> str | None:
    """``cli._tutorial.enforcement_unavailable``, imported when called; a name of this module
    so that tests can replace it here."""
    from kubefence.cli import _tutorial

    return _tutorial.enforcement_unavailable()


def kubectl_unavailable() -> str | None:
    """Why the sandbox cluster cannot be driven with kubectl here, or None."""
    from kubefence.errors import EnvironmentProblem
    from kubefence.kubectl import find_kubectl

    try:
        find_kubectl()
    except EnvironmentProblem as exc:
        return f"{exc} (or use --on sandbox)"
    return None


def stdout_is_tty() -> bool:
    """``cli._tutorial.stdout_is_tty``, imported when called; a name of this module so that
    tests can replace it here."""
    from kubefence.cli import _tutorial

    return _tutorial.stdout_is_tty()


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so the sandbox is taken down by ``finally``."""

    def _handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> int:
    from kubefence.cli._tutorial import (
        ClusterObserver,
        Console,
        NetnsObserver,
        check_step,
        examples_dir,
        run_tutorial,
    )
    from kubefence.dataplane.netns import down, list_sandboxes

    check_step(args.step)
    directory = examples_dir(args.examples)
    color = not args.no_color and stdout_is_tty() and "NO_COLOR" not in os.environ
    console = Console(sys.stdout, color=color)
    reason = "--predict-only was given" if args.predict_only else enforcement_unavailable()
    if reason is None and args.on == "cluster":
        reason = kubectl_unavailable()
    if reason is not None:
        result = run_tutorial(
            directory,
            console=console,
            observer=None,
            not_enforced_reason=reason,
            only_step=args.step,
        )
        if args.keep:
            console.line("--keep: there is no sandbox to keep, nothing was enforced")
        return result.exit_code

    observer: NetnsObserver | ClusterObserver
    if args.on == "cluster":
        observer = ClusterObserver(args.name, nodes=args.nodes)
    else:
        observer = NetnsObserver(args.name)
    with _sigterm_interrupts():
        if args.on == "cluster":
            observer.close()  # a cluster of that name left up by an earlier run
        elif args.name in list_sandboxes():
            console.line(f"Replacing the sandbox {args.name!r} left up by an earlier run.")
            down(args.name)
        try:
            result = run_tutorial(
                directory, console=console, observer=observer, only_step=args.step
            )
        finally:
            if args.keep:
                for text in observer.keep_instructions():
                    console.line(text)
            else:
                observer.close()
    return result.exit_code
