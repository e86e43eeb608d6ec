"""Per-policy connection counters for ``/metrics``, read from the kernel's rule counters.

Why this module exists: "how many connections did policy P deny?" is a dashboard question, and
answering it must cost the forward path nothing. The agent's table carries an anonymous nft
``counter`` on each verdict rule of its class chains (``plan_ruleset(counters=True)``): the
allowing lookup and the drop of each NetworkPolicy class; in the admin tiers, whose class chains
are one verdict map lookup, every step (one policy's rules with an Accept, Deny or Pass action)
then has its own chain that the map sends its packets to, whose first rule counts. Only packets
of new connections reach those chains (established and related ones are accepted first), so the
counters count connection attempts. At scrape time (at most once a second, ``max_age``) this
module lists the table with ``nft -j -t list table`` (terse: no set or map elements, so the cost
follows the number of chains, not of addresses) in the node's namespace and turns the counts
into Prometheus counters ``kubefence_policy_connections_total{tier,namespace,policy,direction,
verdict}``; no Python runs per packet.

What "by policy P" means (docs/agent.md, "Metrics"):

- ``denied``, NetworkPolicy tier: the connection reached a pod (ingress) or left one (egress)
  that P isolates in that direction and no rule of any isolating policy allowed it. Every
  policy isolating that pod in that direction counts it: with two isolating policies a denied
  connection moves both counters (as the flow log says "isolated by P1, P2").
- ``allowed``, NetworkPolicy tier: the pod was isolated and the isolating policies' rules let
  the connection through. The table keeps one merged set per class, so it cannot tell which
  policy's rule matched; every isolating policy *with at least one rule* in that direction
  counts it (a policy without rules, such as a default deny, admits nothing and never counts
  an allowed connection). ``kubefence flows`` names the admitting rule.
- Admin and Baseline tiers: each step is one policy's rules, so the counts are exact:
  ``allowed`` (Accept), ``denied`` (Deny), ``passed`` (Pass). Tier policies are cluster-scoped
  (``namespace=""``).

A rule is known by (table handle, rule handle), which the kernel never reuses: a chain that an
update replaced, or a table installed whole, starts new counters, and each rule's policies are
taken from the agent's plan when the rule is first seen (a chain's text, and so its handles,
changes whenever its policies do). Prometheus counters only grow: the sum over rules that have
gone keeps what they counted.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from kubefence.dataplane.netns import entered, run
from kubefence.dataplane.nft import FLOW_OVER, TABLE, RulesetPlan
from kubefence.semantics import Direction

__all__ = ["CountedRule", "Label", "PolicyCounters", "attribute", "parse_listing", "serving_in"]

_LOG = logging.getLogger("kubefence.agent.counters")
_NETWORK_POLICY = "NetworkPolicy"
_TIER_VERDICT = {"Accept": "allowed", "Deny": "denied", "Pass": "passed"}


@dataclass(frozen=True, slots=True)
class Label:
    """One Prometheus series: which policy, in which tier and direction, and the verdict."""

    tier: str  # "Admin", "NetworkPolicy" or "Baseline"
    namespace: str  # "" for cluster-scoped (tier) policies
    policy: str
    direction: str  # "ingress" or "egress"
    verdict: str  # "allowed", "denied" or "passed"


@dataclass(frozen=True, slots=True)
class CountedRule:
    """One rule of the listed table with an anonymous counter."""

    key: tuple[int, int]  # (table handle, rule handle): never reused by the kernel
    chain: str
    lookup: str | None  # the set the rule looks up (``eg_c3``, ``ad_eg_s2``), None: none
    verdict: str  # "return", "drop", "accept", "goto"
    packets: int


def _verdict(expressions: Iterable[Mapping[str, object]]) -> str:
    for expression in expressions:
        for name in ("return", "drop", "accept", "goto", "jump"):
            if name in expression:
                return name
    return ""


def parse_listing(text: str) -> tuple[list[CountedRule], dict[tuple[int, int], int]]:
    """The counted rules of ``nft -j list table`` output, and the named counter
    ``flow_over`` (the flow log's over-limit count) by (table handle, object handle)."""
    table = 0
    rules: list[CountedRule] = []
    named: dict[tuple[int, int], int] = {}
    for item in json.loads(text).get("nftables", []):
        if "table" in item:
            table = int(item["table"]["handle"])
        elif "counter" in item:
            counter = item["counter"]
            if counter.get("name") == FLOW_OVER:
                named[(table, int(counter["handle"]))] = int(counter.get("packets", 0))
        elif "rule" in item:
            rule = item["rule"]
            expressions = rule.get("expr", [])
            packets = None
            lookup = None
            for expression in expressions:
                counted = expression.get("counter")
                if isinstance(counted, dict):  # anonymous; a named one is its name (a str)
                    packets = int(counted.get("packets", 0))
                match = expression.get("match")
                if isinstance(match, dict):
                    right = match.get("right")
                    if isinstance(right, str) and right.startswith("@"):
                        lookup = right[1:]
            if packets is not None:
                rules.append(
                    CountedRule(
                        key=(table, int(rule["handle"])),
                        chain=str(rule["chain"]),
                        lookup=lookup,
                        verdict=_verdict(expressions),
                        packets=packets,
                    )
                )
    return rules, named


def _split(policy: str) -> tuple[str, str]:
    namespace, _, name = policy.partition("/")
    return (namespace, name) if name else ("", namespace)


def attribute(plan: RulesetPlan, rule: CountedRule) -> tuple[Label, ...]:
    """The series one counted rule adds to, by the plan that installed it (see the module
    docstring for what each verdict means); empty for a rule the plan does not know."""
    classes = {cls.chain: cls for cls in (*plan.egress, *plan.ingress)}
    cls = classes.get(rule.chain)
    if cls is not None:
        direction = cls.direction.value
        if rule.verdict == "drop":
            policies = [s.policy for s in cls.sources]
            verdict = "denied"
        elif rule.lookup == cls.chain:
            policies = [s.policy for s in cls.sources if s.rules > 0]
            verdict = "allowed"
        else:
            return ()
        return tuple(
            Label(_NETWORK_POLICY, *_split(p), direction=direction, verdict=verdict)
            for p in dict.fromkeys(policies)
        )
    if plan.tiers is None or rule.verdict:
        return ()  # a step chain's counter is its first rule, which has no verdict
    for group in plan.tiers.groups:
        for step in group.sets:
            if step.name != rule.chain:
                continue
            direction = "ingress" if group.direction is Direction.INGRESS else "egress"
            names = dict.fromkeys(r.split(" ", 1)[0] for r in step.rules)
            return tuple(
                Label(group.tier, "", name, direction=direction, verdict=_TIER_VERDICT[step.action])
                for name in names
            )
    return ()


class PolicyCounters(Collector):
    """A Prometheus collector over the node table's rule counters (register it in the agent's
    registry); ``refresh`` reads the kernel at most every ``max_age`` seconds."""

    def __init__(
        self,
        *,
        netns: str | None,
        plan: Callable[[], RulesetPlan | None],
        max_age: float = 1.0,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self.netns = netns
        self.plan = plan
        self.max_age = max_age
        self.on_error = on_error
        self.totals: dict[Label, int] = {}
        self.over_limit = 0  # new connections the flow log did not log (its rate limit)
        self._rules: dict[tuple[int, int], tuple[int, tuple[Label, ...]]] = {}
        self._named: dict[tuple[int, int], int] = {}
        self._read_at: float | None = None
        self._lock = threading.Lock()

    def _listing(self) -> str:
        family, name = TABLE.split()
        return run(["nft", "-j", "-t", "list", "table", family, name], netns=self.netns).stdout

    def refresh(self, *, force: bool = False) -> None:
        """Read the kernel's counters (unless read less than ``max_age`` ago) and add what
        grew since the last read to the totals."""
        with self._lock:
            now = time.monotonic()
            if not force and self._read_at is not None and now - self._read_at < self.max_age:
                return
            self._read_at = now
            plan = self.plan()
            if plan is None:
                return  # nothing installed by this agent yet: no rule can be attributed
            try:
                rules, named = parse_listing(self._listing())
            except Exception:
                _LOG.warning("reading the rule counters failed", exc_info=True)
                if self.on_error is not None:
                    self.on_error()
                return
            if self.plan() is not plan:  # an install happened meanwhile: read again next time
                self._read_at = None
                return
            self._add(plan, rules, named)

    def _add(
        self,
        plan: RulesetPlan,
        rules: list[CountedRule],
        named: dict[tuple[int, int], int],
    ) -> None:
        seen: dict[tuple[int, int], tuple[int, tuple[Label, ...]]] = {}
        for rule in rules:
            before = self._rules.get(rule.key)
            labels = attribute(plan, rule) if before is None else before[1]
            grown = rule.packets - (before[0] if before is not None else 0)
            if grown > 0:
                for label in labels:
                    self.totals[label] = self.totals.get(label, 0) + grown
            seen[rule.key] = (rule.packets, labels)
        self._rules = seen
        for key, packets in named.items():
            grown = packets - self._named.get(key, 0)
            self.over_limit += max(grown, 0)
        self._named = dict(named)

    def describe(self) -> Iterator[Metric]:
        """The families without reading the kernel (what ``register`` asks for)."""
        yield from self._families({}, 0)

    def collect(self) -> Iterator[Metric]:
        self.refresh()
        with self._lock:
            totals, over = dict(self.totals), self.over_limit
        yield from self._families(totals, over)

    @staticmethod
    def _families(totals: Mapping[Label, int], over: int) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "kubefence_policy_connections",
            "New connections (attempts) by the policy that decided them, counted by the "
            "node's nftables rules; see docs/agent.md for what 'by policy P' means",
            labels=("tier", "namespace", "policy", "direction", "verdict"),
        )
        for label, value in sorted(totals.items(), key=lambda item: _order(item[0])):
            family.add_metric(
                [label.tier, label.namespace, label.policy, label.direction, label.verdict],
                value,
            )
        yield family
        yield CounterMetricFamily(
            "kubefence_agent_flow_log_not_logged",
            "New connections over the flow log's rate limit (not sent to NFLOG)",
            value=over,
        )


def _order(label: Label) -> tuple[str, ...]:
    return (label.tier, label.namespace, label.policy, label.direction, label.verdict)


@contextmanager
def serving_in(netns: str | None) -> Iterator[None]:
    """Sockets made in this block belong to network namespace ``netns`` (None: this one's):
    a sandbox node's agent serves ``/metrics`` on the node's own address, as an agent on a real
    node serves it on the node's IP (``--metrics-in-netns``)."""
    if netns is None:
        yield
        return
    with entered(netns):
        yield
