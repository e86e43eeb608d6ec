"""The facts the HTML report shows, as one JSON-ready dictionary.

Why this module exists: the page (``_html``) only draws; everything it draws is decided here
from the engine and the audit, so tests can check the numbers without a browser. The heat map
is the engine's per-namespace summary for every port class of TCP, UDP and SCTP (computed on pod
classes, never pods x pods); the first allowed cross-namespace cells carry an explanation: the
reference evaluator's verdict on one representative pod pair (which policy and rule admit it
on each side): the first pair in endpoint order the policies allow (else one the node allows,
S24), found for a whole row of cells at once on the class matrix. Each cell's pair is in its
own two namespaces and classes never span namespaces, so there is nothing to share between
cells: the evaluator runs once per explained cell (about 0.06 ms), at most ``EXPLAIN_MAX``
cells are explained and the page says so for the rest; namespace coverage comes from
``audit.build_report`` without its pod-by-pod cross-tenant explanations, which do not scale.

Compact on purpose (issue 17: 10,000 pods, 1,000 namespaces): the namespace x namespace
matrices of allowed pod pairs are the bulk (14 port classes x 1,000,000 cells were 250 MB of
JSON lists). They travel as ``encode_matrices`` writes them: identical port classes share one
matrix, every matrix after the first is stored as its difference from the first (most cells
agree), in the narrowest unsigned type with wrap-around arithmetic, zlib-compressed and
base64-encoded (the page inflates it with the browser's ``DecompressionStream``, offline).
Pod pairs are not stored: a cell has ``sizes[i] * sizes[j]`` (less ``sizes[i]`` on the
diagonal, a pod and itself). The graph's edges are not stored either: the page derives them
from the matrices (some port class allows a pair).
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kubefence.api import Inventory, Protocol
from kubefence.audit import Finding, Severity, build_report
from kubefence.engine import Matrix, ReachabilityAnalysis, port_classes
from kubefence.report._connlist import connlist_diff
from kubefence.semantics import (
    DEFAULT_SETTINGS,
    Decision,
    Reason,
    Settings,
    SideDecision,
    decide,
)

__all__ = [
    "EXPLAIN_MAX",
    "decode_matrices",
    "encode_matrices",
    "report_data",
]

EXPLAIN_MAX = 4000  # cells explained by the reference evaluator (about 0.06 ms each)

Linker = Callable[[str, int | None], str]


def _default_link(file: str, line: int | None) -> str:
    return f"{file}#L{line}" if line else file


def report_data(
    inventory: Inventory,
    findings: Sequence[Finding],
    *,
    against: Inventory | None = None,
    tenant_label: str | None = None,
    settings: Settings = DEFAULT_SETTINGS,
    link: Linker = _default_link,
    title: str = "kubefence report",
) -> dict[str, Any]:
    """Namespaces, graph edges, heat maps per port class, findings and (with ``against``) the
    diff, for ``_html.render_html``."""
    audit = build_report(
        inventory, tenant_label=tenant_label, reachability=False, settings=settings
    )
    names = [n.name for n in audit.namespaces]
    position = {n: i for i, n in enumerate(names)}
    worst: dict[str, Severity] = {}
    counts: dict[str, int] = {}
    for f in findings:
        if f.namespace is None:
            continue
        counts[f.namespace] = counts.get(f.namespace, 0) + 1
        if f.namespace not in worst or f.severity.rank > worst[f.namespace].rank:
            worst[f.namespace] = f.severity
    namespaces = [
        {
            "name": n.name,
            "tenant": n.tenant,
            "pods": n.pods,
            "ingressIsolated": n.ingress_isolated,
            "egressIsolated": n.egress_isolated,
            "severity": worst[n.name].value if n.name in worst else None,
            "findings": counts.get(n.name, 0),
        }
        for n in audit.namespaces
    ]
    heat, matrices, sizes, unexplained = _heat_maps(inventory, names, position, settings=settings)
    data: dict[str, Any] = {
        "title": title,
        "tenantLabel": tenant_label,
        "pods": len(inventory.pods),
        "policies": len(inventory.policies),
        "namespaces": namespaces,
        "sizes": sizes,
        "matrices": encode_matrices(matrices, size=len(names)),
        "portClasses": heat,
        "unexplained": unexplained,
        "findings": [_finding(f, link) for f in findings],
        "diff": None,
    }
    if against is not None:
        wl = connlist_diff(inventory, against, settings=settings)
        data["diff"] = [
            dict(zip(("type", "source", "destination", "before", "after", "info"), r, strict=True))
            for r in wl.rows
        ]
    return data


def encode_matrices(
    matrices: Sequence[np.ndarray[Any, np.dtype[np.int64]]], *, size: int
) -> dict[str, Any]:
    """``{"dtype", "count", "size", "deflate"}``: the ``size`` x ``size`` non-negative matrices
    as described in the module docstring (``decode_matrices`` and the page's script undo it)."""
    top = max((int(m.max()) for m in matrices if m.size), default=0)
    dtype = next(t for t in (np.uint8, np.uint16, np.uint32) if top <= np.iinfo(t).max)
    if top > np.iinfo(np.uint32).max:  # pragma: no cover - 65,536 pods in one namespace pair
        raise ValueError("more allowed pod pairs in one cell than the report encodes")
    parts: list[np.ndarray[Any, Any]] = []
    for k, m in enumerate(matrices):
        cells = m.astype(dtype)
        parts.append(cells if k == 0 else cells - parts[0].astype(dtype))  # wraps around
    raw = b"".join(np.ascontiguousarray(p, dtype=dtype).tobytes() for p in parts)
    return {
        "dtype": np.dtype(dtype).name,
        "count": len(matrices),
        "size": size,
        "deflate": base64.b64encode(zlib.compress(raw, 6)).decode("ascii"),
    }


def decode_matrices(encoded: dict[str, Any]) -> list[np.ndarray[Any, np.dtype[np.int64]]]:
    """The matrices ``encode_matrices`` encoded (what the page's script computes)."""
    dtype = np.dtype(encoded["dtype"])
    size, count = int(encoded["size"]), int(encoded["count"])
    flat = np.frombuffer(zlib.decompress(base64.b64decode(encoded["deflate"])), dtype=dtype)
    parts = flat.reshape(count, size, size)
    return [
        (parts[k] if k == 0 else parts[0] + parts[k]).astype(np.int64)  # wraps around
        for k in range(count)
    ]


def _finding(f: Finding, link: Linker) -> dict[str, Any]:
    return {
        "rule": f.rule,
        "severity": f.severity.value,
        "message": f.message,
        "fix": f.fix,
        "namespace": f.namespace,
        "object": f.object,
        "path": f.path,
        "file": f.file,
        "line": f.line,
        "href": link(f.file, f.line) if f.file else None,
    }


def _heat_maps(
    inventory: Inventory,
    names: Sequence[str],
    position: dict[str, int],
    *,
    settings: Settings,
) -> tuple[list[dict[str, Any]], list[np.ndarray[Any, np.dtype[np.int64]]], list[int], int]:
    """Per port class: its label, the index of its namespace x namespace matrix of allowed
    pod pairs (identical matrices are kept once) and explanations; the matrices; the pods per
    namespace (a cell's pod pairs are ``sizes[i] * sizes[j]``, less ``sizes[i]`` on the
    diagonal); and how many allowed cross-namespace cells were left unexplained."""
    if not inventory.pods:
        return [], [], [0] * len(names), 0
    analysis = ReachabilityAnalysis(inventory, settings=settings)
    classes = port_classes([inventory], protocols=list(Protocol))
    size = len(names)
    budget = [EXPLAIN_MAX]
    unexplained = 0
    pods: _Pods | None = None
    matrices: list[np.ndarray[Any, np.dtype[np.int64]]] = []
    seen: dict[bytes, int] = {}
    out = []
    # per class matrix: the namespace matrix (in ``names`` order) and its index in ``matrices``
    placed: dict[tuple[bytes, ...], tuple[np.ndarray[Any, np.dtype[np.int64]], int]] = {}
    crossing: dict[int, int] = {}  # per matrix index: its allowed cross-namespace cells
    everyone = list(range(size))
    for pc in classes:
        m = analysis.matrix(pc.port, pc.protocol, label=pc.label)
        # port classes with the same class matrix (often: 14 classes, 10 distinct at 10,000
        # pods) have the same counts: summed and placed once
        shape = (
            m.class_of.tobytes(),
            m.endpoint_namespace.tobytes(),
            str(m.class_bits.shape).encode(),
            m.class_bits.tobytes(),
            repr(m.overrides).encode(),
            "\0".join(m.namespaces).encode(),
        )
        if shape not in placed:
            placed[shape] = _placed(m, position, everyone, seen, matrices)
        allowed, index = placed[shape]
        if pods is None or pods.endpoints != m.endpoints:
            pods = _Pods.of(m.endpoints, position, size=size)
        if budget[0] > 0:
            why, left = _explanations(
                inventory, m, allowed, pods, pc.port, pc.protocol, settings, budget
            )
        else:  # nothing left to explain: every allowed cross-namespace cell is unexplained
            if index not in crossing:
                crossing[index] = int(np.count_nonzero(allowed)) - int(
                    np.count_nonzero(np.diagonal(allowed))
                )
            why, left = {}, crossing[index]
        unexplained += left
        out.append(
            {
                "label": f"{pc.label}/{pc.protocol}",
                "ports": "every port no policy names" if pc.other else pc.label,
                "matrix": index,
                "why": why,
            }
        )
    sizes = [len(p) for p in pods.by_ns] if pods is not None else [0] * size
    return out, matrices, sizes, unexplained


def _placed(
    m: Matrix,
    position: dict[str, int],
    everyone: list[int],
    seen: dict[bytes, int],
    matrices: list[np.ndarray[Any, np.dtype[np.int64]]],
) -> tuple[np.ndarray[Any, np.dtype[np.int64]], int]:
    """``m``'s allowed pod pairs per namespace pair in the report's namespace order, and its
    index in ``matrices`` (appended there unless an identical matrix is)."""
    summary = np.asarray(m.namespace_summary().allowed)
    # the engine also lists namespaces that hold only policies; an inventory built in code
    # need not declare them, and without pods their rows and columns are all zero
    kept = [k for k, n in enumerate(m.namespaces) if n in position]
    idx = [position[m.namespaces[k]] for k in kept]
    if idx == everyone and len(kept) == len(m.namespaces):
        allowed = summary
    else:
        allowed = np.zeros((len(everyone), len(everyone)), dtype=np.int64)
        allowed[np.ix_(idx, idx)] = summary[np.ix_(kept, kept)]
    key = allowed.tobytes()
    if key not in seen:
        seen[key] = len(matrices)
        matrices.append(allowed)
    return matrices[seen[key]], seen[key]


@dataclass(frozen=True, slots=True)
class _Pods:
    """A matrix's pods by the report's namespaces, the same for every port class.

    ``by_ns[i]``: the endpoint indices of ``names[i]``, in endpoint order; ``order``: every
    endpoint index grouped by namespace (stable), each present namespace's run starting at
    ``starts[k]``; ``column[i]``: the run of namespace ``i`` (-1 when it has no pod).
    """

    endpoints: tuple[str, ...]
    by_ns: tuple[np.ndarray[Any, np.dtype[np.int64]], ...]
    order: np.ndarray[Any, np.dtype[np.int64]]
    starts: np.ndarray[Any, np.dtype[np.int64]]
    column: np.ndarray[Any, np.dtype[np.int64]]

    @classmethod
    def of(cls, endpoints: tuple[str, ...], position: dict[str, int], *, size: int) -> _Pods:
        ns_of = np.array([position[e.partition("/")[0]] for e in endpoints], dtype=np.int64)
        order = np.argsort(ns_of, kind="stable")
        grouped = ns_of[order]
        starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]]) if len(order) else order
        column = np.full(size, -1, dtype=np.int64)
        column[grouped[starts]] = np.arange(len(starts))
        bounds = np.r_[starts, len(order)]
        by_ns = [np.zeros(0, dtype=np.int64)] * size
        for k, ns in enumerate(grouped[starts]):
            by_ns[int(ns)] = order[bounds[k] : bounds[k + 1]]
        return cls(endpoints, tuple(by_ns), order, starts, column)


def _explanations(
    inventory: Inventory,
    m: Matrix,
    allowed: np.ndarray[Any, np.dtype[np.int64]],
    pods: _Pods,
    port: int,
    protocol: Protocol,
    settings: Settings,
    budget: list[int],
) -> tuple[dict[str, str], int]:
    """``"i,j"`` -> why a pod of namespace ``i`` may reach one of namespace ``j`` (one
    example), for the first allowed cross-namespace cells (row by row) while the budget lasts;
    and how many allowed cross-namespace cells it left unexplained."""
    cross = allowed != 0
    np.fill_diagonal(cross, False)
    total = int(np.count_nonzero(cross))
    out: dict[str, str] = {}
    visited = 0
    for i in np.flatnonzero(cross.any(axis=1)) if budget[0] > 0 else ():
        targets = np.flatnonzero(cross[i])
        for j, pair in zip(targets, _example_pairs(m, pods, int(i), targets), strict=True):
            if budget[0] <= 0:
                break
            visited += 1
            if pair is None:
                continue
            budget[0] -= 1
            src, dst = m.endpoints[pair[0]], m.endpoints[pair[1]]
            decision = decide(inventory, src, dst, port=port, protocol=protocol, settings=settings)
            out[f"{i},{j}"] = _why(decision, src, dst)
        if budget[0] <= 0:
            break
    return out, total - visited


def _example_pairs(
    m: Matrix, pods: _Pods, i: int, targets: np.ndarray[Any, np.dtype[np.int64]]
) -> list[tuple[int, int] | None]:
    """For each namespace of ``targets``: the first allowed (source, destination) endpoint
    pair from namespace ``i`` to it, sources then destinations in endpoint order (the first
    hit of the pods x pods block, row by row); a pair the node allows (S24) when the policies
    allow none; None when there is neither."""
    srcs = pods.by_ns[i]
    n = len(pods.order)
    # sources x every pod (grouped by namespace): the policy verdict, then each
    # (source, namespace) pair's first allowed destination (n where there is none)
    verdicts = m.class_rows(m.class_of[srcs])[:, m.class_of[pods.order]]
    first = np.minimum.reduceat(np.where(verdicts, np.arange(n), n), pods.starts, axis=1)
    columns = first[:, pods.column[targets]]
    hit = columns < n
    rows = hit.argmax(axis=0)
    found: list[tuple[int, int] | None] = []
    for k, j in enumerate(targets):
        if pods.column[j] >= 0 and hit[rows[k], k]:
            found.append((int(srcs[rows[k]]), int(pods.order[columns[rows[k], k]])))
        else:
            found.append(_node_pair(m, srcs, pods.by_ns[int(j)]))
    return found


def _node_pair(
    m: Matrix,
    srcs: np.ndarray[Any, np.dtype[np.int64]],
    dsts: np.ndarray[Any, np.dtype[np.int64]],
) -> tuple[int, int] | None:
    """The first pair the node allows (S24) from ``srcs`` to ``dsts``, or None."""
    sources, destinations = set(srcs.tolist()), set(dsts.tolist())
    for src, targets in m.overrides:
        if src in sources:
            for dst in targets:
                if dst in destinations:
                    return src, dst
    return None


def _why(decision: Decision, src: str, dst: str) -> str:
    parts = [f"e.g. {src} -> {dst}"]
    if decision.reason is not Reason.POLICIES:
        parts.append(f"decided by {decision.reason.value}")
    for label, side in (("egress", decision.egress), ("ingress", decision.ingress)):
        if side is not None:
            parts.append(f"{label}: {_side(side)}")
    return "; ".join(parts)


def _side(side: SideDecision) -> str:
    if not side.applicable:
        return "not a selectable pod, no restriction"
    if not side.isolated:
        return "not isolated"
    admitted = ", ".join(
        f"{a.policy.key} rule {a.rule}"
        + (f" ({a.policy.file}:{a.line})" if a.policy.file and a.line else "")
        for a in side.admitted_by
    )
    return f"allowed by {admitted}" if admitted else "denied"
