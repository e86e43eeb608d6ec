"""``kubefence.audit`` exports its contract only: lint, the report, isolation policies and
what the tiers isolate (``tier_isolation``, for ``isolate --check``)."""

from __future__ import annotations

import kubefence.audit


def test_audit_exports_only_its_contract() -> None:
    """Text helpers (describe_selector, describe_ports) and constants of the generated
    manifests stay internal; every exported name exists."""
    assert sorted(kubefence.audit.__all__) == sorted(
        [
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
    )
    assert all(hasattr(kubefence.audit, name) for name in kubefence.audit.__all__)
