"""Label selector matching (S17), as the evaluators see it.

Why this module exists: the semantic core's vocabulary includes selector matching; its single
definition lives in ``kubefence.api`` (``api`` needs it to validate workload
selectors, and cannot import upward), and is re-exported here unchanged.
"""

from __future__ import annotations

from kubefence.api import requirement_holds, selector_matches

__all__ = ["requirement_holds", "selector_matches"]
