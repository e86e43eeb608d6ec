"""The work behind ``kubefence flows``: explain each logged connection and print it.

Why this module exists apart from ``cli/commands/flows.py``: ``kubefence --help`` imports every
command module for its name and help line, and this part needs the API, the semantics and the
data plane; keeping them here means ``--help`` pays for none of them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from kubefence.api import Inventory, Protocol
from kubefence.dataplane import netns
from kubefence.errors import InputError, KubefenceError
from kubefence.semantics import Decision, Settings, decide

_PROTOCOLS = {6: Protocol.TCP, 17: Protocol.UDP, 132: Protocol.SCTP}
_OTHER_PROTOCOLS = {1: "ICMP", 58: "ICMPv6"}
_DECISIONS_KEPT = 4096  # explanations remembered per (source, destination, port, protocol)
_COUNTER_EVERY = 1.0  # seconds between reads of the over-limit counter


class FlowExplainer:
    """Names the endpoints of a logged connection and explains it with ``decide``, keeping
    the last few thousand answers (a flood repeats the same few shapes)."""

    def __init__(
        self,
        inventory: Inventory,
        *,
        settings: Settings,
        names: Mapping[str, str],
    ) -> None:
        self.inventory = inventory
        self.settings = settings
        self.names = names  # address text -> "ns/pod" or "node:NAME"
        self._decisions: OrderedDict[tuple[str, str, int, Protocol], Decision] = OrderedDict()

    def name(self, address: object) -> str:
        return self.names.get(str(address), str(address))

    def decision(self, event: netns.FlowEvent) -> Decision | str | None:
        """``decide``'s answer, the reason it has none (an address no longer in the
        inventory), or None for a protocol without ports."""
        protocol = _PROTOCOLS.get(event.protocol)
        if protocol is None or event.destination_port is None:
            return None
        key = (
            self.name(event.source),
            self.name(event.destination),
            event.destination_port,
            protocol,
        )
        found = self._decisions.get(key)
        if found is None:
            try:
                found = decide(
                    self.inventory,
                    key[0],
                    key[1],
                    port=key[2],
                    protocol=protocol,
                    settings=self.settings,
                )
            except KubefenceError as exc:
                return f"cannot explain: {exc}"
            self._decisions[key] = found
            if len(self._decisions) > _DECISIONS_KEPT:
                self._decisions.popitem(last=False)
        return found

    def record(self, event: netns.FlowEvent) -> dict[str, Any]:
        """The JSON object of one connection (the text line is made from it)."""
        decision = self.decision(event)
        protocol = _PROTOCOLS.get(event.protocol)
        record: dict[str, Any] = {
            "time": datetime.fromtimestamp(event.time, tz=UTC).isoformat(timespec="milliseconds"),
            "verdict": "allowed" if event.allowed else "denied",
            "source": self.name(event.source),
            "sourceAddress": str(event.source),
            "sourcePort": event.source_port,
            "destination": self.name(event.destination),
            "destinationAddress": str(event.destination),
            "port": event.destination_port,
            "protocol": (
                protocol.value
                if protocol is not None
                else _OTHER_PROTOCOLS.get(event.protocol, str(event.protocol))
            ),
            "droppedBy": event.chain,
            "explanation": (
                "kubefence explains TCP, UDP and SCTP connections only"
                if decision is None
                else decision
                if isinstance(decision, str)
                else explanation(decision)
            ),
            "predicted": None,
        }
        if isinstance(decision, Decision):
            record["predicted"] = "allowed" if decision.allowed else "denied"
        return record


def explanation(decision: Decision) -> str:
    """One line: the side that denied it (isolated by whom, no rule allows it), or the rules
    that admitted it on each isolated side."""
    parts = []
    for side in (decision.egress, decision.ingress):
        rule = side.tier_rule if side is not None and side.applicable else None
        if side is not None and rule is not None:  # decided by an admin tier (Accept/Deny)
            name = f" ({rule.rule_name})" if rule.rule_name else ""
            what = f"{rule.tier} {rule.kind} {rule.policy} {side.direction.value}[{rule.rule}]"
            if not side.allowed:
                parts.append(f"{side.direction.value} at {side.endpoint}: denied by {what}{name}")
            elif decision.allowed:
                parts.append(f"{side.direction.value} at {side.endpoint}: accepted by {what}{name}")
            continue
        if side is None or not side.applicable or not side.isolated:
            continue
        where = f"{side.direction.value} at {side.endpoint}"
        if side.allowed:
            if decision.allowed:
                rules = ", ".join(f"{a.policy.key} rule {a.rule}" for a in side.admitted_by)
                parts.append(f"{where}: allowed by {rules}")
        else:
            names = ", ".join(p.key for p in side.isolating)
            parts.append(f"{where}: isolated by {names}, no rule allows it")
    if parts:
        return "; ".join(parts)
    if decision.egress is None and decision.ingress is None:
        return f"decided without policies ({decision.reason.value})"
    return "no policy isolates either side"


def render_line(record: Mapping[str, Any]) -> str:
    clock = str(record["time"])[11:23]
    source = record["source"] + (f":{record['sourcePort']}" if record["sourcePort"] else "")
    port = f"{record['port']}/{record['protocol']}" if record["port"] is not None else ""
    target = f"{record['destination']} {port or record['protocol']}"
    mismatch = ""
    if record["predicted"] is not None and record["predicted"] != record["verdict"]:
        mismatch = f"  [MISMATCH: kubefence predicts {record['predicted']}]"
    return (
        f"{clock}  {record['verdict']:<7}  {source} -> {target}  {record['explanation']}{mismatch}"
    )


def _wanted(record: Mapping[str, Any], args: argparse.Namespace) -> bool:
    if args.verdict is not None and record["verdict"] != args.verdict:
        return False
    if args.namespace is not None:
        spaces = {str(record[k]).split("/", 1)[0] for k in ("source", "destination")}
        return args.namespace in spaces
    return True


def _emit(args: argparse.Namespace, record: Mapping[str, Any], text: str) -> None:
    if args.output == "json":
        print(json.dumps(record), flush=True)
    else:
        print(text, flush=True)


def _report_drops(args: argparse.Namespace, over: int, overruns: int, rate: int) -> None:
    text = (
        f"# {over} new connection{'s' if over != 1 else ''} over the flow log's rate limit "
        f"({rate}/s) not logged"
    )
    if overruns:
        text += f"; the reader fell behind {overruns} time{'s' if overruns != 1 else ''}"
    _emit(args, {"notLogged": over, "rateLimit": rate, "readerOverruns": overruns}, text)


class _OverCounter:
    """nft's over-limit counter as a count since this command started; a whole-table install
    (``sandbox apply``) starts the counter again from 0, which is added, not subtracted."""

    def __init__(self, read: Callable[[], int | None]) -> None:
        self.read = read
        self.last = read() or 0
        self.total = 0

    def since_start(self) -> int:
        current = self.read()
        if current is not None:
            self.total += current - self.last if current >= self.last else current
            self.last = current
        return self.total


def _attach(name: str) -> netns.Sandbox:
    from kubefence.sources.files import load_paths

    state = netns.require_state(name)
    paths = netns.manifest_paths(state)
    inventory = (
        load_paths(paths, default_namespace=state.default_namespace) if paths else Inventory.of()
    )
    return netns.Sandbox.attach(name, inventory)


def _names(sandbox: netns.Sandbox) -> dict[str, str]:
    names = {str(a): key for key, slot in sandbox.state.pods.items() for a in slot.addresses}
    return names


def run_flows(args: argparse.Namespace) -> int:
    """``kubefence flows``: read, explain and print new connections until done."""
    if args.cluster is not None:
        from kubefence.cli._flows_cluster import run_cluster_flows

        return run_cluster_flows(args)
    netns.check_name(args.name)
    netns.check_environment()
    sandbox = _attach(args.name)
    flow_log = sandbox.flow_log
    if flow_log is None:
        raise InputError(
            f"sandbox {args.name!r} was brought up without a flow log; bring it up again "
            "with 'kubefence sandbox up' (the flow log is on by default)"
        )
    node = sandbox.state.node_netns
    explainer = FlowExplainer(sandbox.inventory, settings=sandbox.settings, names=_names(sandbox))
    counter = _OverCounter(lambda: netns.flows_over_limit(node))
    with netns.FlowReader(node, group=flow_log.group) as reader:
        print(
            f"kubefence flows: sandbox {args.name!r}, new connections as nftables judges them "
            f"(at most {flow_log.rate}/s logged)" + ("; Ctrl-C to stop" if args.follow else ""),
            file=sys.stderr,
            flush=True,
        )
        return follow(
            args,
            lambda wait: (explainer.record(event) for event in reader.read(wait)),
            counter,
            lambda: reader.overruns,
            flow_log.rate,
        )


def follow(
    args: argparse.Namespace,
    records: Callable[[float], Iterable[dict[str, Any]]],
    counter: _OverCounter,
    overruns: Callable[[], int],
    rate: int,
) -> int:
    """Print what ``records(wait)`` reads (each call waits at most ``wait`` seconds) until
    ``--duration`` is over, or for ever with ``-f``; every ``_COUNTER_EVERY`` seconds, report
    the connections not logged (over the rate limit) and the reader's overruns, if changed.
    The sandbox's and the cluster's ``flows`` share it."""
    reported_over, reported_overruns = 0, 0
    deadline = None if args.follow else time.monotonic() + args.duration
    next_count = time.monotonic() + _COUNTER_EVERY
    while deadline is None or time.monotonic() < deadline:
        wait = min(next_count, deadline or next_count) - time.monotonic()
        for record in records(max(wait, 0.0)):
            if _wanted(record, args):
                _emit(args, record, render_line(record))
        if time.monotonic() >= next_count or (deadline and time.monotonic() >= deadline):
            next_count = time.monotonic() + _COUNTER_EVERY
            over, missed = counter.since_start(), overruns()
            if over != reported_over or missed != reported_overruns:
                reported_over, reported_overruns = over, missed
                _report_drops(args, over, missed, rate)
    return 0
