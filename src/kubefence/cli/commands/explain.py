"""``kubefence explain``: may this connection happen, and which policy and rule decide it?

Why this module exists: the question users ask most about NetworkPolicy is "which policy
dropped my packet?". This command answers one connection with the policy names, rule numbers
and the file:line of each rule, as text or JSON, and with ``--expect`` it becomes a CI check.
"""

from __future__ import annotations

import sys

from kubefence.cli._inputs import (
    add_family_argument,
    add_input_arguments,
    add_settings_arguments,
    family_from_args,
    inventory_from_args,
    not_evaluated,
    settings_from_args,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see cli/main.py)
if TYPE_CHECKING:
    import argparse

NAME = "explain"
HELP = "explain whether one connection is allowed and which policies and rules decide it"

EXIT_OK = 0
EXIT_MISMATCH = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(
        parser,
        live=True,
        verbose_help="also show how each endpoint was understood, every rule of every "
        "isolating policy of a denial (not only the nearest) with each port entry's verdict, "
        "and the isolating policies that admit nothing on an allowed side",
    )
    add_settings_arguments(parser)
    add_family_argument(parser)
    parser.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="SRC",
        help="source: NAMESPACE/POD, an IP address or node:NAME",
    )
    parser.add_argument(
        "--to",
        dest="destination",
        required=True,
        metavar="DST",
        help="destination: NAMESPACE/POD, an IP address, node:NAME or svc:NAMESPACE/NAME",
    )
    parser.add_argument(
        "--port", required=True, help="port number, or a port name of the destination pod"
    )
    parser.add_argument("--protocol", default="TCP", help="TCP, UDP or SCTP (default: %(default)s)")
    parser.add_argument(
        "-o", "--output", choices=("text", "json"), default="text", help="output format"
    )
    parser.add_argument(
        "--expect",
        choices=("allow", "deny"),
        help="exit 1 when the verdict differs (for CI)",
    )


def _check_family(endpoint: str, option: str, family: int | None) -> None:
    """An address endpoint of the other family cannot be on a packet of ``--family``."""
    import ipaddress

    from kubefence.errors import InputError

    text = endpoint.strip()
    text = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        version = ipaddress.ip_address(text).version
    except ValueError:
        return
    if family is not None and version != family:
        raise InputError(
            f"{option} {endpoint} is an IPv{version} address, but --family is ipv{family}"
        )


def run(args: argparse.Namespace) -> int:
    import json

    from kubefence.cli._render_decision import decision_to_json, render_text
    from kubefence.semantics import decide

    family = family_from_args(args)
    _check_family(args.source, "--from", family)
    _check_family(args.destination, "--to", family)
    inventory = inventory_from_args(args, command="explain")
    decision = decide(
        inventory,
        args.source,
        args.destination,
        port=args.port,
        protocol=args.protocol,
        settings=settings_from_args(args),
    )
    if args.output == "json":
        data = decision_to_json(decision)
        data["not_evaluated"] = not_evaluated(inventory)  # kinds in the input no answer reads
        print(json.dumps(data, indent=2, sort_keys=False))
    else:
        print(render_text(decision, verbose=args.verbose))
    verdict = "allow" if decision.allowed else "deny"
    if args.expect is not None and args.expect != verdict:
        print(f"kubefence: expected {args.expect}, but the verdict is {verdict}", file=sys.stderr)
        return EXIT_MISMATCH
    return EXIT_OK
