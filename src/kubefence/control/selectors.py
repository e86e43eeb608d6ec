"""Label and field selectors in their URL form (`?labelSelector=app in (a,b),!x`).

Why here and not in `kubefence.api`: the API's selectors are structured (matchLabels,
matchExpressions); the server must parse the string syntax kubectl and client-go send. Parsed
label selectors become `kubefence.api.Requirement`s and are matched by `requirement_holds`, the
one definition of label matching.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubefence.api import Operator, Requirement, requirement_holds
from kubefence.control.status import ApiError

__all__ = ["FieldSelector", "LabelSelector", "parse_field_selector", "parse_label_selector"]

_SET = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|!=|=)\s*([A-Za-z0-9_.-]*)\s*$")


@dataclass(frozen=True, slots=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(requirement_holds(r, labels) for r in self.requirements)


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p.strip()]


def parse_label_selector(text: str | None) -> LabelSelector:
    if not text:
        return LabelSelector()
    requirements = []
    for part in _split(text):
        eq = _EQ.match(part)
        if eq:
            key, op, value = eq.groups()
            operator = Operator.NOT_IN if op == "!=" else Operator.IN
            requirements.append(Requirement(key, operator, (value,)))
            continue
        match = _SET.match(part)
        if not match:
            raise ApiError.bad_request(f"unable to parse requirement: {part.strip()!r}")
        bang, key, op, values = match.groups()
        if op:
            listed = tuple(v.strip() for v in values.split(",") if v.strip())
            operator = Operator.IN if op == "in" else Operator.NOT_IN
            requirements.append(Requirement(key, operator, listed))
        else:
            operator = Operator.DOES_NOT_EXIST if bang else Operator.EXISTS
            requirements.append(Requirement(key, operator, ()))
    return LabelSelector(tuple(requirements))


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """`a.b=x,c!=y` over dotted object paths (metadata.name, involvedObject.uid, ...)."""

    terms: tuple[tuple[str, bool, str], ...] = ()  # (path, equal?, value)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for path, equal, value in self.terms:
            found = _lookup(obj, path)
            if (found == value) != equal:
                return False
        return True

    def only_name(self) -> str | None:
        """The name when the selector is exactly `metadata.name=<name>`."""
        if len(self.terms) == 1 and self.terms[0][0] == "metadata.name" and self.terms[0][1]:
            return self.terms[0][2]
        return None


def _lookup(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_field_selector(text: str | None) -> FieldSelector:
    if not text:
        return FieldSelector()
    terms = []
    for part in text.split(","):
        if not part.strip():
            continue
        for op, equal in (("!=", False), ("==", True), ("=", True)):
            if op in part:
                path, value = part.split(op, 1)
                terms.append((path.strip(), equal, value.strip()))
                break
        else:
            raise ApiError.bad_request(f"invalid field selector: {part!r}")
    return FieldSelector(tuple(terms))
