"""Reading one object's fields: typed access that records a problem for every wrong value.

Why this module exists: every kind kubefence parses (``_parse_policy``, ``_parse_pods``,
``_parse_service``, ``_build_inventory``) walks plain mappings and lists and must report each
problem the same way: a ``FieldError`` with the file, the line of the field (``member_line``),
the object's label (``Pod test/web``) and the API-server field path. ``ObjectReader`` is that one
way: its getters return None for an absent or null field, and a problem plus None for a value of
the wrong type, so parsers read on and every problem of an object is found in one pass. The
checks shared by several kinds (labels, strict fields, protocols, IP addresses) live here too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from kubefence.api._models import IPAddress, Labels, LabelSelector, Protocol
from kubefence.api._tree import member_line
from kubefence.api._validate import (
    PROTOCOLS,
    ip_problems,
    label_value_problems,
    qualified_name_problems,
)
from kubefence.errors import FieldError

__all__ = ["METADATA_FIELDS", "ObjectReader", "clip", "show", "type_name"]

# Strict field validation beyond NetworkPolicy, limited to structs whose typos would silently
# change an answer (a misspelt ``labels`` drops labels, a misspelt ``containerPort`` drops a
# named port): ``metadata`` of every kind and of pod templates.
METADATA_FIELDS = frozenset(
    {
        "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
        "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
        "annotations", "ownerReferences", "finalizers", "managedFields",
    }
)  # fmt: skip


def type_name(value: object) -> str:
    """How a problem names the type of a decoded value: ``an integer``, ``a list``, ``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def clip(text: str) -> str:
    """A name as shown in an object label: invalid names can be arbitrarily long."""
    return text if len(text) <= 253 else text[:250] + "..."


def show(value: object) -> str:
    """A value quoted in a problem, shortened to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _has_type(value: object, kind: type | tuple[type, ...]) -> bool:
    """``isinstance``, except that a boolean is not an integer unless ``bool`` is asked for."""
    if isinstance(value, bool):
        return bool in (kind if isinstance(kind, tuple) else (kind,))
    return isinstance(value, kind)


class ObjectReader:
    """Problem collection for one object: knows its file, label and fallback line.

    ``selectors`` is shared by every object of one input set: the label selectors already read
    without a problem, by their text (``_parse_selector``).
    """

    __slots__ = ("file", "label", "line", "problems", "selectors")

    def __init__(
        self,
        problems: list[FieldError],
        *,
        file: str,
        line: int | None,
        label: str,
        selectors: dict[tuple[bool, str], LabelSelector] | None = None,
    ):
        self.problems = problems
        self.file = file
        self.line = line
        self.label = label
        self.selectors = selectors if selectors is not None else {}

    def invalid(
        self,
        path: str,
        value: object,
        problems: Iterable[str],
        line: int | None = None,
        *,
        what: str = "value",
    ) -> None:
        """One problem per message of a value checker (``dns1123_label_problems`` ...)."""
        for message in problems:
            self.fail(path, f"invalid {what} {show(value)}: {message}", line)

    def fail(self, path: str, message: str, line: int | None = None) -> None:
        self.problems.append(
            FieldError(
                message,
                path=path,
                file=self.file,
                line=line if line is not None else self.line,
                object=self.label,
            )
        )

    # --- typed access: None for absent/null, a problem (and None) for a wrong type ---------

    def get(
        self,
        parent: Mapping[Any, Any],
        key: str,
        path: str,
        kind: type | tuple[type, ...],
        what: str,
    ) -> Any:
        value = parent.get(key)
        if value is None:
            return None
        if _has_type(value, kind):
            return value
        self.fail(path, f"must be {what}, not {type_name(value)}", member_line(parent, key))
        return None

    def _wrong(self, parent: Mapping[Any, Any], key: str, path: str, what: str) -> None:
        value = parent[key]
        self.fail(path, f"must be {what}, not {type_name(value)}", member_line(parent, key))

    def mapping(self, parent: Mapping[Any, Any], key: str, path: str) -> Mapping[Any, Any] | None:
        value = parent.get(key)
        if value is None or isinstance(value, dict | Mapping):
            return value
        self._wrong(parent, key, path, "an object")
        return None

    def sequence(self, parent: Mapping[Any, Any], key: str, path: str) -> Sequence[Any] | None:
        value = parent.get(key)
        if value is None or isinstance(value, list | tuple):
            return value
        self._wrong(parent, key, path, "a list")
        return None

    def string(self, parent: Mapping[Any, Any], key: str, path: str) -> str | None:
        value = parent.get(key)
        if value is None or value.__class__ is str or isinstance(value, str):
            return value
        self._wrong(parent, key, path, "a string")
        return None

    def integer(self, parent: Mapping[Any, Any], key: str, path: str) -> int | None:
        value = parent.get(key)
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        self._wrong(parent, key, path, "an integer")
        return None

    def boolean(self, parent: Mapping[Any, Any], key: str, path: str) -> bool | None:
        value = parent.get(key)
        if value is None or isinstance(value, bool):
            return value
        self._wrong(parent, key, path, "a boolean (true or false)")
        return None

    def item(self, items: Sequence[Any], index: int, path: str, kind: type, what: str) -> Any:
        value = items[index]
        if _has_type(value, kind):
            return value
        self.fail(path, f"must be {what}, not {type_name(value)}", member_line(items, index))
        return None

    def entries(
        self, items: Sequence[Any], path: str, kind: type, what: str
    ) -> Iterator[tuple[str, Any, int | None]]:
        """``(path[i], item, line)`` for each item of ``items`` that is a ``kind``; a problem
        for each other item (``must be {what}``)."""
        for index in range(len(items)):
            item_path = f"{path}[{index}]"
            value = self.item(items, index, item_path, kind, what)
            if value is not None:
                yield item_path, value, member_line(items, index)

    # --- checks shared by several kinds -----------------------------------------------------

    def unknown_fields(self, value: Mapping[Any, Any], allowed: frozenset[str], path: str) -> None:
        """Strict field validation (V07): name every field the schema does not have."""
        for key in value:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                self.fail(
                    where,
                    f"unknown field; valid fields here: {', '.join(sorted(allowed))}",
                    member_line(value, key),
                )

    def string_map(self, parent: Mapping[Any, Any], key: str, path: str) -> dict[str, str]:
        """A map of strings (labels, selectors, annotations), type-checked entry by entry."""
        value = self.mapping(parent, key, path)
        if value is None:
            return {}
        result: dict[str, str] = {}
        for k, v in value.items():
            if v.__class__ is str and k.__class__ is str:
                result[k] = v
            elif not isinstance(k, str):
                self.fail(
                    path,
                    f"key {show(k)} must be a string, not {type_name(k)}",
                    member_line(value, k),
                )
            elif not isinstance(v, str):
                self.fail(
                    path,
                    f"value of {k!r} must be a string, not {type_name(v)} (quote it)",
                    member_line(value, k),
                )
            else:
                result[k] = v
        return result

    def labels(self, parent: Mapping[Any, Any], key: str, path: str) -> Labels:
        """A label map, validated as ``ValidateLabels`` does (problems at the map's path)."""
        labels = self.string_map(parent, key, path)
        container = parent.get(key)
        for k, v in labels.items():
            key_problems = qualified_name_problems(k)
            value_problems = label_value_problems(v)
            if not key_problems and not value_problems:
                continue  # the common case: no line needed
            line = member_line(container, k)
            self.invalid(path, k, key_problems, line, what="label key")
            for msg in value_problems:
                self.fail(path, f"invalid label value {show(v)} (key {k!r}): {msg}", line)
        return Labels(labels)

    def unique_name(
        self,
        entry: Mapping[Any, Any],
        path: str,
        name: str,
        problems: Sequence[str],
        seen: set[str],
        *,
        duplicate_if_invalid: bool = True,
    ) -> None:
        """``entry``'s ``name`` (of a container or a port): one problem per message of its
        checker, one more if a name in ``seen`` repeats. As in ``validateContainerPorts``, a
        container port's name counts as a duplicate only when it is valid
        (``duplicate_if_invalid=False``); containers and service ports report both."""
        line = member_line(entry, "name")
        self.invalid(path, name, problems, line)
        if (duplicate_if_invalid or not problems) and name in seen:
            self.fail(path, f"duplicate value {name!r}", line)
        seen.add(name)

    def protocol(self, raw: Mapping[Any, Any], path: str) -> Protocol | None:
        """The ``protocol`` of a policy, container or service port: TCP when absent (S18); None,
        with a problem, when it is not one of TCP, UDP and SCTP."""
        protocol = self.string(raw, "protocol", f"{path}.protocol") or "TCP"
        if protocol in PROTOCOLS:
            return Protocol(protocol)
        self.fail(
            f"{path}.protocol",
            f'unsupported value {show(protocol)}: supported values: "SCTP", "TCP", "UDP"',
            member_line(raw, "protocol"),
        )
        return None

    def addresses(
        self, texts: Iterable[tuple[str, str, int | None]], *, alternative: str = ""
    ) -> tuple[IPAddress, ...]:
        """The addresses of ``(text, path, line)`` entries in order, without repeats; a problem
        for each text that is not an IP address (``alternative`` names another accepted value).
        """
        result: list[IPAddress] = []
        for text, path, line in texts:
            problems = ip_problems(text)
            self.invalid(path, text, [m + alternative for m in problems], line)
            if not problems:
                address = ipaddress.ip_address(text)
                if address not in result:
                    result.append(address)
        return tuple(result)
