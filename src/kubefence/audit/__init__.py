"""Namespace isolation tooling: lint findings, isolation coverage and reachability, and the
generator of isolation policies behind ``kubefence audit`` and ``kubefence isolate``.

Why this package exists: multi-tenant clusters need one report that says which namespaces are
isolated, which tenants can reach each other, and which policy mistakes cause that. The analysis
is pure (no I/O) and reads only the inventory, the compiled algebra and the reference evaluator,
so it agrees with every execution of the semantics; rendering (table, JSON, SARIF) is in ``cli``.
"""

from __future__ import annotations

from kubefence.audit._common import (
    DEFAULT_SERVICE_CIDRS,
    NODE_LOCAL_DNS,
    describe_ports,
    describe_selector,
)
from kubefence.audit._findings import RULES, RULES_BY_ID, Finding, LintRule, Severity
from kubefence.audit._isolate import GENERATED_BY, isolation_policies
from kubefence.audit._lint import LintOptions, lint, split_duplicate_policies
from kubefence.audit._reach import (
    AuditReport,
    ExternalAccess,
    NamespaceReport,
    Opening,
    PodPath,
    build_report,
)

__all__ = [
    "DEFAULT_SERVICE_CIDRS",
    "GENERATED_BY",
    "NODE_LOCAL_DNS",
    "RULES",
    "RULES_BY_ID",
    "AuditReport",
    "ExternalAccess",
    "Finding",
    "LintOptions",
    "LintRule",
    "NamespaceReport",
    "Opening",
    "PodPath",
    "Severity",
    "build_report",
    "describe_ports",
    "describe_selector",
    "isolation_policies",
    "lint",
    "split_duplicate_policies",
]
