"""``kubefence flows``: one line per new connection in a sandbox, with the policy behind it.

Why this module exists: when a ``curl`` in the sandbox times out, the question is "which policy
dropped it?". The sandbox's ruleset logs each new connection's verdict to NFLOG (the table's
flow log, ``kubefence.dataplane.nft.FlowLog``: observed by the kernel, not predicted); this
command reads those records through ``dataplane.netns.FlowReader`` and explains each one with
``kubefence.semantics.decide`` on the sandbox's stored inventory, the explanation ``kubefence
explain`` gives, so the line says which policy isolated the pod and that no rule allows the
connection, or which rule admitted it. When the reference evaluator disagrees with what the
kernel did, the line says so. Connections over the log's rate limit are not logged but counted
by nft; the command reports that count as it grows. With ``--cluster NAME`` it reads every
node of a sandbox cluster (``cli/_flows_cluster.py``). It starts no process.
"""

from __future__ import annotations

import argparse

NAME = "flows"
HELP = "stream new connections in a sandbox or sandbox cluster with their verdict and the policy"


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, not {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default="default", help="sandbox name (default: %(default)s)")
    parser.add_argument(
        "--cluster",
        metavar="NAME",
        help="read the flow logs of every node of this sandbox cluster ('kubefence cluster "
        "up'), explained from what its API server stores, instead of a sandbox",
    )
    parser.add_argument(
        "-n", "--namespace", help="only connections from or to a pod of this namespace"
    )
    parser.add_argument("--verdict", choices=("allowed", "denied"), help="only this verdict")
    parser.add_argument(
        "-f", "--follow", action="store_true", help="keep streaming until interrupted"
    )
    parser.add_argument(
        "--duration",
        type=_seconds,
        default=5.0,
        help="without -f: seconds to listen before exiting (default: %(default)s)",
    )
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    from kubefence.cli._flows import run_flows

    return run_flows(args)
