"""Parsing a ``metav1.LabelSelector``: matchLabels and matchExpressions, validated (V02).

Why this module exists: label selectors appear in policies (``podSelector``, peers'
``podSelector`` and ``namespaceSelector``) and in workloads (``spec.selector``), and must be
validated identically in each place, as ``ValidateLabelSelector`` does. Matching selectors
against labels is ``_selectors``; this module only turns manifest fields into a
``LabelSelector`` or problems.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubefence.api._models import LabelSelector, Operator, Requirement
from kubefence.api._parse_fields import ObjectReader, show
from kubefence.api._tree import member_line
from kubefence.api._validate import label_value_problems, qualified_name_problems

__all__ = ["label_selector"]

# Strict field validation (V07) of the two structs of a selector.
_SELECTOR_FIELDS = frozenset({"matchLabels", "matchExpressions"})
_REQUIREMENT_FIELDS = frozenset({"key", "operator", "values"})


def label_selector(
    obj: ObjectReader, parent: Mapping[Any, Any], key: str, path: str, *, strict: bool = True
) -> LabelSelector | None:
    """``metav1.LabelSelector`` validated as ``ValidateLabelSelector`` (V02); None if absent."""
    raw = obj.mapping(parent, key, path)
    if raw is None:
        return None
    if strict:
        obj.unknown_fields(raw, _SELECTOR_FIELDS, path)
    before = len(obj.problems)
    match_labels = obj.labels(raw, "matchLabels", f"{path}.matchLabels")
    requirements: list[Requirement] = []
    expressions = obj.sequence(raw, "matchExpressions", f"{path}.matchExpressions") or []
    # An item that is not an object is a problem: the selector below is never built then.
    for req_path, req, req_line in obj.entries(
        expressions, f"{path}.matchExpressions", Mapping, "an object"
    ):
        if strict:
            obj.unknown_fields(req, _REQUIREMENT_FIELDS, req_path)
        req_key = obj.string(req, "key", f"{req_path}.key")
        operator = obj.string(req, "operator", f"{req_path}.operator")
        values_raw = obj.sequence(req, "values", f"{req_path}.values")
        values: list[str] = []
        for v_path, v, v_line in obj.entries(
            values_raw or [], f"{req_path}.values", str, "a string"
        ):
            values.append(v)
            obj.invalid(v_path, v, label_value_problems(v), v_line)
        line = req_line if operator not in ("Exists", "DoesNotExist") else None
        if operator in ("In", "NotIn"):
            if not values_raw:
                obj.fail(
                    f"{req_path}.values",
                    "must be specified when `operator` is 'In' or 'NotIn'",
                    line,
                )
        elif operator in ("Exists", "DoesNotExist"):
            if values_raw:
                obj.fail(
                    f"{req_path}.values",
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    member_line(req, "values"),
                )
        elif operator is None:
            if req.get("operator") is None:
                obj.fail(
                    f"{req_path}.operator", "is required: In, NotIn, Exists or DoesNotExist", line
                )
        else:
            obj.fail(
                f"{req_path}.operator",
                f"not a valid selector operator {show(operator)}: "
                "use In, NotIn, Exists or DoesNotExist",
                member_line(req, "operator"),
            )
        if req_key is None:
            if req.get("key") is None:
                obj.fail(f"{req_path}.key", "is required (a label key)", line)
        else:
            obj.invalid(
                f"{req_path}.key",
                req_key,
                qualified_name_problems(req_key),
                member_line(req, "key"),
                what="label key",
            )
        if req_key is not None and operator in ("In", "NotIn", "Exists", "DoesNotExist"):
            requirements.append(Requirement(req_key, Operator(operator), tuple(sorted(values))))
    if len(obj.problems) != before:
        return LabelSelector()  # never used: the input set is rejected
    return LabelSelector(match_labels=match_labels, match_expressions=tuple(requirements))
