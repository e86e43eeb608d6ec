"""Label selector matching (S17): the one definition every layer uses.

Why this module exists: ``api`` needs selector matching itself (a workload's selector must match
its template's labels), and every evaluator above needs the same answer, so the definition
lives at the bottom and ``kubefence.semantics`` re-exports it.
"""

from __future__ import annotations

from collections.abc import Mapping

from kubefence.api._models import LabelSelector, Operator, Requirement

__all__ = ["requirement_holds", "selector_matches"]


def requirement_holds(req: Requirement, labels: Mapping[str, str]) -> bool:
    """One matchExpressions entry (S17): In, NotIn (absent key holds), Exists, DoesNotExist."""
    if req.operator is Operator.IN:
        return req.key in labels and labels[req.key] in req.values
    if req.operator is Operator.NOT_IN:
        return req.key not in labels or labels[req.key] not in req.values
    if req.operator is Operator.EXISTS:
        return req.key in labels
    return req.key not in labels  # DoesNotExist


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """matchLabels and every matchExpressions entry hold; the empty selector matches all (S14)."""
    for key, value in selector.match_labels.items():
        if labels.get(key) != value:
            return False
    return all(requirement_holds(req, labels) for req in selector.match_expressions)
