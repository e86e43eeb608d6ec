"""The facts the HTML report shows, as one JSON-ready dictionary.

Why this module exists: the page (``_html``) only draws; everything it draws is decided here
from the engine and the audit, so tests can check the numbers without a browser. The heat map
is the engine's per-namespace summary for every port class of TCP, UDP and SCTP (computed on pod
classes, never pods x pods); each allowed cross-namespace cell carries an explanation: the
reference evaluator's verdict on one representative pod pair (which policy and rule admit it
on each side). Explaining costs about 0.3 ms a cell, so at most ``EXPLAIN_MAX`` cells are
explained and the rest say so; namespace coverage comes from ``audit.build_report`` without
its pod-by-pod cross-tenant explanations, which do not scale (a 500-pod cluster took 28 s).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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

__all__ = ["EXPLAIN_MAX", "report_data"]

EXPLAIN_MAX = 4000  # cells explained by the reference evaluator (about 0.3 ms each)

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
    heat = _heat_maps(inventory, names, position, settings=settings)
    edges: dict[tuple[int, int], list[str]] = {}
    for pc in heat:
        for i, row in enumerate(pc["allowed"]):
            for j, value in enumerate(row):
                if value and i != j:
                    edges.setdefault((i, j), []).append(pc["label"])
    tenant_of = {n["name"]: n["tenant"] for n in namespaces}
    data: dict[str, Any] = {
        "title": title,
        "tenantLabel": tenant_label,
        "pods": len(inventory.pods),
        "policies": len(inventory.policies),
        "namespaces": namespaces,
        "edges": [
            {
                "source": names[i],
                "target": names[j],
                "ports": ports,
                "crossTenant": bool(
                    tenant_label
                    and tenant_of[names[i]]
                    and tenant_of[names[j]]
                    and tenant_of[names[i]] != tenant_of[names[j]]
                ),
            }
            for (i, j), ports in sorted(edges.items())
        ],
        "portClasses": heat,
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
) -> list[dict[str, Any]]:
    """One namespace x namespace map of allowed pod pairs per port class, with explanations."""
    if not inventory.pods:
        return []
    analysis = ReachabilityAnalysis(inventory, settings=settings)
    classes = port_classes([inventory], protocols=list(Protocol))
    size = len(names)
    budget = [EXPLAIN_MAX]
    out = []
    for pc in classes:
        m = analysis.matrix(pc.port, pc.protocol, label=pc.label)
        summary = m.namespace_summary()
        idx = [position[n] for n in summary.namespaces]
        allowed = np.zeros((size, size), dtype=np.int64)
        pairs = np.zeros((size, size), dtype=np.int64)
        allowed[np.ix_(idx, idx)] = np.asarray(summary.allowed, dtype=np.int64)
        pairs[np.ix_(idx, idx)] = np.asarray(summary.pairs, dtype=np.int64)
        why = _explanations(inventory, m, allowed, names, pc.port, pc.protocol, settings, budget)
        out.append(
            {
                "label": f"{pc.label}/{pc.protocol}",
                "ports": "every port no policy names" if pc.other else pc.label,
                "allowed": allowed.tolist(),
                "pairs": pairs.tolist(),
                "why": why,
            }
        )
    return out


def _explanations(
    inventory: Inventory,
    m: Matrix,
    allowed: np.ndarray[Any, np.dtype[np.int64]],
    names: Sequence[str],
    port: int,
    protocol: Protocol,
    settings: Settings,
    budget: list[int],
) -> dict[str, str]:
    """``"i,j"`` -> why a pod of ``names[i]`` may reach one of ``names[j]`` (one example)."""
    by_ns: dict[str, list[int]] = {}
    for k, endpoint in enumerate(m.endpoints):
        by_ns.setdefault(endpoint.partition("/")[0], []).append(k)
    out: dict[str, str] = {}
    for i, j in zip(*np.nonzero(allowed), strict=True):
        if i == j:
            continue
        key = f"{i},{j}"
        if budget[0] <= 0:
            out[key] = "(not explained: more than the report explains; use kubefence explain)"
            continue
        pair = _example_pair(m, by_ns[names[i]], by_ns[names[j]])
        if pair is None:
            continue
        budget[0] -= 1
        src, dst = m.endpoints[pair[0]], m.endpoints[pair[1]]
        decision = decide(inventory, src, dst, port=port, protocol=protocol, settings=settings)
        out[key] = _why(decision, src, dst)
    return out


def _example_pair(m: Matrix, srcs: Sequence[int], dsts: Sequence[int]) -> tuple[int, int] | None:
    cls_src = m.class_of[list(srcs)]
    cls_dst = m.class_of[list(dsts)]
    block = m.class_allowed[np.ix_(cls_src, cls_dst)]
    hits = np.argwhere(block)
    if len(hits):
        a, b = hits[0]
        return srcs[int(a)], dsts[int(b)]
    for src, targets in m.overrides:  # S24: from the node only
        if src in srcs:
            for dst in targets:
                if dst in dsts:
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
