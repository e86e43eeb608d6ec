"""The lint checks: patterns in valid NetworkPolicies that are almost always mistakes.

Why this package exists: it groups the checks, one module per family (``_peers`` KF001/KF008,
``_selection`` KF002/KF003, ``_ports`` KF004, ``_dns`` KF005, ``_ipblock`` KF006/KF007,
``_defaults`` KF009-KF011, ``_redundant`` KF012, ``_duplicates`` KF013,
``_tiers`` KF014-KF018), around the context they
share (``_context``) and the registry that runs them (``_registry``).
"""

from __future__ import annotations

from kubefence.audit._lint._context import LintOptions
from kubefence.audit._lint._duplicates import split_duplicate_policies
from kubefence.audit._lint._registry import lint

__all__ = ["LintOptions", "lint", "split_duplicate_policies"]
