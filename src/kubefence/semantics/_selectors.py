"""Label selector matching (S17) and the namespace metadata.name rule (S16).

Why this module exists: one definition of "does this selector match these labels", shared by
the reference evaluator, the vectorised engine and the nftables compiler.
"""

from __future__ import annotations

from collections.abc import Mapping

from kubefence.api import LabelSelector, Operator, Requirement

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
