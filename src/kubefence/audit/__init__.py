"""Namespace isolation tooling: lint findings, isolation coverage and reachability, and the
generator of isolation policies behind ``kubefence audit`` and ``kubefence isolate``.

Why this package exists: multi-tenant clusters need one report that says which namespaces are
isolated, which tenants can reach each other, and which policy mistakes cause that. The analysis
is pure (no I/O) and reads only the inventory, the compiled algebra, the engine's port classes
and the reference evaluator, so it agrees with every execution of the semantics; rendering
(table, JSON, SARIF) is in ``cli``.

The contract (``__all__``): ``lint`` with its ``LintOptions`` (and their defaults) and
``split_duplicate_policies``, returning ``Finding`` records of the ``RULES`` catalog;
``build_report`` returning an ``AuditReport`` and the records it is made of; and
``isolation_policies``. Everything else, e.g. the text forms of selectors and ports, is internal.
"""

from __future__ import annotations

from kubefence.audit._common import DEFAULT_SERVICE_CIDRS, NODE_LOCAL_DNS
from kubefence.audit._findings import RULES, RULES_BY_ID, Finding, LintRule, Severity
from kubefence.audit._isolate import isolation_policies
from kubefence.audit._lint import LintOptions, lint, split_duplicate_policies
from kubefence.audit._reach import (
    AuditReport,
    ExternalAccess,
    NamespacePath,
    NamespaceReport,
    Opening,
    PodPath,
    WorkloadPath,
    build_report,
)
from kubefence.audit._tier_isolation import TierIsolation, tier_isolation

__all__ = [
    "DEFAULT_SERVICE_CIDRS",
    "NODE_LOCAL_DNS",
    "RULES",
    "RULES_BY_ID",
    "AuditReport",
    "ExternalAccess",
    "Finding",
    "LintOptions",
    "LintRule",
    "NamespacePath",
    "NamespaceReport",
    "Opening",
    "PodPath",
    "Severity",
    "TierIsolation",
    "WorkloadPath",
    "build_report",
    "isolation_policies",
    "lint",
    "split_duplicate_policies",
    "tier_isolation",
]
