"""Connection lists: who may connect to whom, one line per workload pair, as netpol-analyzer
prints them.

Why this module exists: people who use np-guard's netpol-analyzer (``k8snetpolicy list`` and
``diff``) read and diff its connection list; ``kubefence matrix -o connlist`` and ``kubefence
diff -o connlist`` print the same shape so they can switch, and compare the two tools' answers
line by line. A line is ``src => dst : conns`` where an endpoint is ``namespace/name[Kind]``:
pods made from a workload template collapse to the workload (``Pod.owner``, e.g.
``shop/web[Deployment]``), a pod declared on its own is ``namespace/name[Pod]``. ``conns`` is
``All Connections`` or the allowed ports per protocol, protocols in alphabetical order, e.g.
``SCTP 1-65535,TCP 1-79,81-65535,UDP 53`` (netpol-analyzer's form since it dropped
``All but: ...``; checked against its test outputs at commit e54a334, 2025-10). A workload
pair lists a port when some pod of the source may connect to some pod of the destination on
it (replicas share a template, so they normally agree); connections within one workload and
pairs with no connection are not listed, as in netpol-analyzer.

Pure: the engine computes, this module groups and formats.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kubefence.api import Inventory, Pod, Protocol
from kubefence.engine import PortClass, ReachabilityAnalysis, port_classes
from kubefence.semantics import DEFAULT_SETTINGS, Settings

__all__ = [
    "FORMATS",
    "ConnList",
    "ConnListDiff",
    "connlist",
    "connlist_diff",
    "render_connlist",
    "render_connlist_diff",
    "workload_of",
]

FORMATS = ("txt", "csv", "json", "md")

_MAX_PORT = 65535
_ALL_PROTOCOLS = tuple(sorted(Protocol))  # SCTP, TCP, UDP: netpol-analyzer's order
ALL_CONNECTIONS = "All Connections"
NO_CONNECTIONS = "No Connections"

Spans = tuple[tuple[int, int], ...]  # sorted, disjoint, non-adjacent port intervals


def workload_of(pod: Pod) -> str:
    """``namespace/name[Kind]``: the pod's workload (``owner``), or the pod itself."""
    if pod.owner is not None:
        kind, _, name = pod.owner.partition("/")
        return f"{pod.namespace}/{name}[{kind}]"
    return f"{pod.namespace}/{pod.name}[Pod]"


@dataclass(frozen=True, slots=True)
class ConnSet:
    """The ports allowed per protocol, over the protocols ``complete`` covers entirely."""

    ports: tuple[tuple[Protocol, Spans], ...]  # only protocols with some allowed port
    protocols: tuple[Protocol, ...]  # the protocols that were asked about
    named: str | None = None  # ``--port http``: said as the name given, not as numbers

    @property
    def empty(self) -> bool:
        return not self.ports

    def text(self) -> str:
        if self.empty:
            return NO_CONNECTIONS
        if self.named is not None:
            return ",".join(f"{p} {self.named}" for p, _ in self.ports)
        allowed = dict(self.ports)
        if set(self.protocols) == set(Protocol) and all(
            allowed.get(p) == ((1, _MAX_PORT),) for p in Protocol
        ):
            return ALL_CONNECTIONS
        return _ports_text(self.ports)


def _ports_text(ports: Iterable[tuple[Protocol, Spans]]) -> str:
    parts = []
    for protocol, spans in ports:
        numbers = ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in spans)
        parts.append(f"{protocol} {numbers}")
    return ",".join(parts)


def _complement(spans: Spans) -> Spans:
    out: list[tuple[int, int]] = []
    nxt = 1
    for lo, hi in spans:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= _MAX_PORT:
        out.append((nxt, _MAX_PORT))
    return tuple(out)


def _merge(spans: Iterable[tuple[int, int]]) -> Spans:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def _class_spans(classes: Sequence[PortClass]) -> dict[PortClass, Spans]:
    """The ports each class answers for; "other" is every port no named class covers."""
    out: dict[PortClass, Spans] = {}
    for protocol in {c.protocol for c in classes}:
        mine = [c for c in classes if c.protocol == protocol]
        named = _merge((c.low, c.high) for c in mine if not c.other)
        for c in mine:
            out[c] = _complement(named) if c.other else ((c.low, c.high),)
    return out


@dataclass(frozen=True, slots=True)
class ConnList:
    """Every workload pair with some allowed connection, and the workloads in the cluster."""

    lines: tuple[tuple[str, str, ConnSet], ...]  # sorted by (src, dst)
    workloads: tuple[str, ...]

    def as_map(self) -> Mapping[tuple[str, str], ConnSet]:
        return {(s, d): c for s, d, c in self.lines}


def connlist(
    inventory: Inventory,
    *,
    port: int | str | None = None,
    protocols: Sequence[Protocol] | None = None,
    classes: Sequence[PortClass] | None = None,
    analysis: ReachabilityAnalysis | None = None,
    settings: Settings = DEFAULT_SETTINGS,
) -> ConnList:
    """The connection list of ``inventory``: on ``port`` only when given (with the first of
    ``protocols``, default TCP), else on every port of ``protocols`` (default: all three, so
    ``All Connections`` can be said). ``classes`` overrides the port classes (a diff passes
    the union of both versions'); ``analysis`` reuses a prepared engine."""
    analysis = analysis or ReachabilityAnalysis(inventory, settings=settings)
    asked = tuple(protocols) if protocols else _ALL_PROTOCOLS
    if port is not None:
        protocol = asked[0] if protocols else Protocol.TCP
        number = port if isinstance(port, int) else 0
        queries: list[tuple[int | str, Protocol, Spans]] = [(port, protocol, ((number, number),))]
        asked = (protocol,)
    else:
        chosen = classes if classes is not None else port_classes([inventory], protocols=asked)
        spans = _class_spans(chosen)
        queries = [(c.port, c.protocol, spans[c]) for c in chosen]
    names = sorted({workload_of(p) for p in inventory.pods})
    index = {w: i for i, w in enumerate(names)}
    of_pod = np.asarray([index[workload_of(p)] for p in inventory.pods], dtype=np.int64)
    per_pair: dict[tuple[int, int], dict[Protocol, list[tuple[int, int]]]] = {}
    for query_port, protocol, query_spans in queries:
        reach = _workload_matrix(analysis, query_port, protocol, of_pod, len(names))
        for i, j in zip(*np.nonzero(reach), strict=True):
            if i != j:
                bucket = per_pair.setdefault((int(i), int(j)), {})
                bucket.setdefault(protocol, []).extend(query_spans)
    named = port if isinstance(port, str) else None
    lines = []
    for i, j in sorted(per_pair, key=lambda ij: (names[ij[0]], names[ij[1]])):
        by_protocol = per_pair[(i, j)]
        ports = tuple((p, _merge(by_protocol[p])) for p in _ALL_PROTOCOLS if p in by_protocol)
        lines.append((names[i], names[j], ConnSet(ports=ports, protocols=asked, named=named)))
    return ConnList(lines=tuple(lines), workloads=tuple(names))


def _workload_matrix(
    analysis: ReachabilityAnalysis,
    port: int | str,
    protocol: Protocol,
    of_pod: npt.NDArray[np.int64],
    count: int,
) -> npt.NDArray[np.bool_]:
    """reach[a, b]: some pod of workload a may connect to some other pod of workload b;
    computed on pod classes (workloads x classes), never pods x pods."""
    m = analysis.matrix(port, protocol)
    n_cls = m.class_allowed.shape[0]
    member = np.zeros((count, n_cls), dtype=np.float64)
    if len(of_pod):
        member[of_pod, m.class_of] = 1.0
    reach = (member @ m.class_allowed.astype(np.float64) @ member.T) > 0
    for src, dsts in m.overrides:
        reach[of_pod[src], of_pod[list(dsts)]] = True
    return np.asarray(reach, dtype=np.bool_)


@dataclass(frozen=True, slots=True)
class ConnListDiff:
    """netpol-analyzer's diff: per workload pair, changed / added / removed connections."""

    rows: tuple[tuple[str, str, str, str, str, str], ...]  # type, src, dst, ref1, ref2, info


def connlist_diff(
    old: Inventory,
    new: Inventory,
    *,
    protocols: Sequence[Protocol] | None = None,
    settings: Settings = DEFAULT_SETTINGS,
) -> ConnListDiff:
    """Compare the connection lists of ``old`` and ``new`` on the union of their port classes."""
    asked = tuple(protocols) if protocols else _ALL_PROTOCOLS
    classes = port_classes([old, new], protocols=asked)
    before = connlist(old, protocols=asked, classes=classes, settings=settings).as_map()
    after_list = connlist(new, protocols=asked, classes=classes, settings=settings)
    after = after_list.as_map()
    old_workloads = {workload_of(p) for p in old.pods}
    new_workloads = set(after_list.workloads)
    rows = []
    for src, dst in sorted(set(before) | set(after)):
        a, b = before.get((src, dst)), after.get((src, dst))
        a_text = a.text() if a else NO_CONNECTIONS
        b_text = b.text() if b else NO_CONNECTIONS
        if a_text == b_text:
            continue
        kind = "changed" if a and b else "added" if b else "removed"
        # "workload A added", "workload A and B removed": the endpoints that exist in one
        # version only (netpol-analyzer's wording)
        changed = [w for w in (src, dst) if (w in old_workloads) != (w in new_workloads)]
        info = f"workload {' and '.join(changed)} {kind}" if changed else ""
        rows.append((kind, src, dst, a_text, b_text, info))
    order = {"changed": 0, "added": 1, "removed": 2}  # netpol-analyzer's order
    rows.sort(key=lambda r: (order[r[0]], r[1], r[2]))
    return ConnListDiff(rows=tuple(rows))


def render_connlist(conns: ConnList, fmt: str = "txt") -> str:
    """``txt``: ``src => dst : conns`` lines; ``csv``/``md``/``json``: src, dst, conn."""
    rows = [(s, d, c.text()) for s, d, c in conns.lines]
    if fmt == "json":
        doc = [{"src": s, "dst": d, "conn": c} for s, d, c in rows]
        return json.dumps(doc, indent=2) + "\n"
    if fmt == "csv":
        return _csv(("src", "dst", "conn"), rows)
    if fmt == "md":
        return _markdown(("src", "dst", "conn"), rows)
    return "".join(f"{s} => {d} : {c}\n" for s, d, c in rows)


_DIFF_HEADER = ("diff-type", "source", "destination", "ref1", "ref2", "workloads-diff-info")


def render_connlist_diff(diff: ConnListDiff, fmt: str = "txt") -> str:
    """``txt``: netpol-analyzer's ``Connectivity diff:`` lines (``ref1`` the -f manifests,
    ``ref2`` the --against ones; only the header when nothing changed); csv, md and json:
    one row each."""
    if fmt == "json":
        doc = [dict(zip(_DIFF_HEADER, row, strict=True)) for row in diff.rows]
        return json.dumps(doc, indent=2) + "\n"
    if fmt == "csv":
        return _csv(_DIFF_HEADER, diff.rows)
    if fmt == "md":
        return _markdown(_DIFF_HEADER, diff.rows)
    lines = ["Connectivity diff:"]
    for kind, src, dst, dir1, dir2, info in diff.rows:
        line = f"diff-type: {kind}, source: {src}, destination: {dst}, ref1: {dir1}, ref2: {dir2}"
        lines.append(f"{line}, workloads-diff-info: {info}" if info else line)
    return "\n".join(lines) + "\n"


def _csv(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _markdown(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("-" * (len(h) + 2) for h in header) + "|",
    ]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
