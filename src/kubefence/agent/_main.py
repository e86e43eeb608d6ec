"""The agent's command line: ``python -m kubefence.agent`` and ``kubefence agent`` share it.

Why this module exists: the process entry point and the CLI subcommand must accept the same
options and start the agent the same way (in this process: the CLI starts no process).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
from collections.abc import Sequence

from kubefence.agent._agent import Agent, Options, install_signal_handlers
from kubefence.agent._ops import configure_logging
from kubefence.api import Protocol

__all__ = ["add_arguments", "main", "options_from_args", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--node", required=True, help="the node whose pods this agent enforces")
    parser.add_argument(
        "--kubeconfig",
        help="kubeconfig file (default: the in-cluster service account, else $KUBECONFIG)",
    )
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument(
        "--netns",
        help="network namespace holding the node's forward hook (default: this process's)",
    )
    parser.add_argument(
        "--fail-open",
        action="store_true",
        help="before the first sync, let traffic pass (default: keep the previous table, or "
        "hold new connections when there is none)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="serve /healthz, /readyz and /metrics on this port (0: any free port)",
    )
    parser.add_argument(
        "--metrics-address", default="127.0.0.1", help="address to serve them on (%(default)s)"
    )
    parser.add_argument(
        "--lease-namespace",
        default="kubefence-system",
        help="namespace of the node's Lease kubefence-agent-NODE (%(default)s)",
    )
    parser.add_argument(
        "--lease-duration",
        type=float,
        default=15.0,
        help="seconds a Lease stays valid without renewal (%(default)s)",
    )
    parser.add_argument(
        "--debounce",
        type=float,
        default=0.005,
        help="seconds to gather a burst of changes into one transaction; a change to an idle "
        "agent is installed at once (%(default)s)",
    )
    parser.add_argument(
        "--resync", type=float, default=300.0, help="seconds between full resyncs (%(default)s)"
    )
    parser.add_argument(
        "--max-backoff",
        type=float,
        default=1.0,
        help="longest wait between retries while the API server is unreachable; short, so the "
        "node converges soon after an outage (%(default)s s)",
    )
    parser.add_argument(
        "--unsupported-protocol",
        dest="unsupported",
        action="append",
        choices=("TCP", "UDP", "SCTP"),
        help="treat policies naming this protocol as not enforceable here (repeatable; "
        "default: SCTP when the kernel has no SCTP)",
    )
    parser.add_argument(
        "--node-address",
        dest="node_addresses",
        action="append",
        default=[],
        help="an address of the node itself (its forwarded packets are accepted, S24)",
    )
    parser.add_argument(
        "--hold-cidr",
        dest="hold_cidrs",
        action="append",
        default=[],
        help="a pod CIDR of this node (repeatable): while any NetworkPolicy exists, packets "
        "from or to an address in it that is no pod the agent has planned are dropped (fail "
        "closed for new pods)",
    )
    parser.add_argument(
        "--flow-log",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="send each new connection's verdict to NFLOG for 'kubefence flows' (at most "
        "200/s, the rest counted; default: off, 'cluster up' turns it on)",
    )
    parser.add_argument(
        "--policy-counters",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="count connections per policy in nft rule counters, exported on /metrics as "
        "kubefence_policy_connections_total (default: on)",
    )
    parser.add_argument(
        "--metrics-in-netns",
        action="store_true",
        help="serve the HTTP endpoints inside --netns (a sandbox node's own address and port) "
        "rather than in this process's namespace",
    )
    parser.add_argument("--log-level", default="info", help="log level (%(default)s)")


def options_from_args(args: argparse.Namespace) -> Options:
    return Options(
        node=args.node,
        kubeconfig=args.kubeconfig,
        context=args.context,
        netns=args.netns,
        fail_open=args.fail_open,
        metrics_host=args.metrics_address,
        metrics_port=args.metrics_port,
        lease_namespace=args.lease_namespace,
        lease_duration=args.lease_duration,
        debounce=args.debounce,
        resync=args.resync,
        max_backoff=args.max_backoff,
        unsupported=(
            None if args.unsupported is None else tuple(Protocol(p) for p in args.unsupported)
        ),
        node_addresses=tuple(ipaddress.ip_address(a) for a in args.node_addresses),
        hold_cidrs=tuple(ipaddress.ip_network(c) for c in args.hold_cidrs),
        flow_log=args.flow_log,
        policy_counters=args.policy_counters,
        metrics_in_netns=args.metrics_in_netns,
    )


def run(args: argparse.Namespace) -> int:
    """Configure JSON logging, start the agent in this process, block until it stops."""
    configure_logging(args.log_level)
    agent = Agent(options_from_args(args))
    install_signal_handlers(agent)
    try:
        return agent.run()
    except KeyboardInterrupt:
        return 0
    finally:
        logging.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kubefence.agent",
        description="kubefence's policy agent: keeps one node's nftables rules equal to the "
        "NetworkPolicies an API server stores",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
