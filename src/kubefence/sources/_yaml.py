"""Decode YAML and JSON manifests into documents that remember the line of every field.

Why this module exists: libyaml's C parser is fast but PyYAML's constructors throw line numbers
away. We let the C parser compose node trees (``yaml.compose_all`` with ``CSafeLoader``) and build
plain Python values from the nodes ourselves, recording where each mapping key and list item
starts (``api._tree.LineDict``/``LineList``). Building them ourselves also lets us refuse what a
trusting loader would accept: duplicate keys, recursive aliases, alias "bombs" that expand into
millions of nodes, and absurd nesting. Every failure becomes a ``FieldError`` naming the file and
line; nothing here raises anything else.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from kubefence.api import Document, LineDict, LineList
from kubefence.errors import FieldError

__all__ = ["decode_bytes", "parse_text"]

MAX_DEPTH = 100  # nesting levels; Kubernetes objects need about 20
MAX_ALIAS_NODES = 1_000_000  # nodes built by re-expanding aliases, per file (billion laughs)

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SCALARS = yaml.constructor.SafeConstructor()

_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_PLAIN = "tag:kubefence,2026:plain"  # a plain scalar whose type we resolve only when needed
_MISSING = object()
_IMPLICIT: dict[str, list[tuple[str, Any]]] = {
    first: resolvers
    for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
    if first is not None
}


class _Loader(_BaseLoader):  # type: ignore[misc]  # PyYAML's loaders are untyped
    """libyaml's parser and composer, with tag resolution deferred to ``_Builder``.

    PyYAML resolves every plain scalar with regular expressions in Python, from inside the C
    composer; that was a third of the loading time. Mapping keys never need it (Kubernetes turns
    every key into a string anyway), and most values start with a letter no resolver claims.
    """

    # The composer tells the resolver where it descends and ascends, twice per node, for the
    # path resolvers we never register: C built-ins that take the same arguments and do nothing
    # cost less than PyYAML's Python methods that return at once (~7% of composing).
    descend_resolver = slice  # called as (parent, index)
    ascend_resolver = tuple  # called without arguments

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is ScalarNode:
            return _PLAIN if implicit[0] else _STR
        return "tag:yaml.org,2002:map" if kind is MappingNode else "tag:yaml.org,2002:seq"


def _plain(node: ScalarNode) -> object:
    """A plain scalar's value under the YAML 1.1 rules PyYAML's SafeLoader applies."""
    value = node.value
    if not value:
        return None
    for tag, regexp in _IMPLICIT.get(value[0], ()):
        if regexp.match(value):
            builder = _SCALAR_BUILDERS.get(tag)
            if builder is None:
                return value  # timestamps and the like stay strings
            try:
                return builder(node)
            except (ValueError, TypeError, OverflowError):
                return value
    return value


class _Problem(Exception):  # noqa: N818 (internal control flow, never escapes this module)
    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def _scalar(node: ScalarNode) -> object:
    """The Python value of a scalar, by the tag the YAML 1.1 resolver gave it.

    Timestamps, binary and unknown tags stay strings: Kubernetes has no such types, and a string
    is what a field expecting text should see.
    """
    tag = node.tag
    if tag == _STR:
        return node.value
    if tag == _PLAIN:
        return _plain(node)
    builder = _SCALAR_BUILDERS.get(tag)
    if builder is None:
        return node.value
    try:
        return builder(node)
    except (ValueError, TypeError, OverflowError):
        return node.value


_SCALAR_BUILDERS: dict[str, Callable[[ScalarNode], object]] = {
    "tag:yaml.org,2002:int": _SCALARS.construct_yaml_int,
    "tag:yaml.org,2002:float": _SCALARS.construct_yaml_float,
    "tag:yaml.org,2002:bool": _SCALARS.construct_yaml_bool,
    "tag:yaml.org,2002:null": lambda _node: None,
}


class _Builder:
    """Turns node trees into LineDict/LineList/scalars, with bounded depth and expansion.

    An alias is the same node object reached twice, so building it twice copies it. Instead of
    tracking identities we bound the total: every node built costs one unit, and a stream gets
    ``len(text) + MAX_ALIAS_NODES`` units. Without aliases every node takes at least one character
    of text, so only alias expansion can exhaust the budget. A recursive alias expands forever
    and hits ``MAX_DEPTH`` first.
    """

    __slots__ = ("_budget", "_plain_values")

    def __init__(self, text_length: int) -> None:
        self._budget = text_length + MAX_ALIAS_NODES
        # Plain scalars recur (label values, port names, "TCP"): resolve each text once.
        self._plain_values: dict[str, object] = {}

    def build(self, node: Node, depth: int = 0) -> object:
        if node.__class__ is ScalarNode:
            return _scalar(node)
        if depth > MAX_DEPTH:
            raise _Problem(
                node.start_mark.line + 1,
                f"nesting deeper than {MAX_DEPTH} levels (or an alias that contains itself)",
            )
        self._budget -= len(node.value)
        if self._budget < 0:
            raise _Problem(
                None, f"aliases expand to more than {MAX_ALIAS_NODES} nodes (an alias bomb?)"
            )
        if isinstance(node, MappingNode):
            return self._mapping(node, depth)
        if isinstance(node, SequenceNode):
            return self._sequence(node, depth)
        raise _Problem(node.start_mark.line + 1, "unsupported YAML node")

    def _mapping(self, node: MappingNode, depth: int) -> LineDict:
        result = LineDict(node.start_mark.line + 1)
        lines = result.key_lines
        merges: list[LineDict] = []
        for key_node, value_node in node.value:
            if key_node.__class__ is ScalarNode and key_node.tag in (_PLAIN, _STR):
                key = key_node.value
                if key == "<<" and key_node.tag == _PLAIN:
                    merges.extend(self._merge_sources(value_node, depth))
                    continue
            elif key_node.tag == _MERGE:
                merges.extend(self._merge_sources(value_node, depth))
                continue
            else:
                key = self.build(key_node, depth + 1)
                if isinstance(key, LineDict | LineList):
                    raise _Problem(key_node.start_mark.line + 1, "mapping keys must be scalars")
            line = key_node.start_mark.line + 1
            if key in lines:
                raise _Problem(line, f"duplicate key {key!r} (first at line {lines[key]})")
            if value_node.__class__ is ScalarNode:
                if value_node.tag is _PLAIN:
                    text = value_node.value
                    cached = self._plain_values.get(text, _MISSING)
                    if cached is _MISSING:
                        cached = self._plain_values[text] = _plain(value_node)
                    result[key] = cached
                else:
                    result[key] = _scalar(value_node)
            else:
                result[key] = self.build(value_node, depth + 1)
            lines[key] = line
        for source in merges:  # YAML merge keys: explicit keys win, earlier sources win
            for key, value in source.items():
                if key not in lines:
                    result[key] = value
                    lines[key] = source.key_lines.get(key, source.line)
        return result

    def _merge_sources(self, node: Node, depth: int) -> list[LineDict]:
        value = self.build(node, depth + 1)
        sources = value if isinstance(value, LineList) else [value]
        if not all(isinstance(s, LineDict) for s in sources):
            raise _Problem(node.start_mark.line + 1, "a merge key '<<' needs a mapping or a list")
        return list(sources)

    def _sequence(self, node: SequenceNode, depth: int) -> LineList:
        result = LineList(node.start_mark.line + 1)
        lines = result.item_lines
        build = self.build
        for item in node.value:
            result.append(build(item, depth + 1))
            lines.append(item.start_mark.line + 1)
        return result


def decode_bytes(data: bytes, *, file: str) -> str | FieldError:
    """Bytes to text: UTF-8 (with or without BOM) or UTF-16/32 with a BOM, else a problem."""
    encoding = "utf-8"
    for bom, name in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            encoding = name
            break
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return FieldError(
            f"not valid {encoding.upper()} text (byte {exc.start}); manifests must be UTF-8",
            file=file,
            line=line,
        )


def _yaml_error(exc: yaml.YAMLError, text: str, file: str) -> FieldError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        return FieldError(f"invalid YAML: {what or 'syntax error'}", file=file, line=line)
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        return FieldError(
            f"invalid YAML: unacceptable character {exc.character!r}", file=file, line=line
        )
    return FieldError(f"invalid YAML: {exc}", file=file)


def _json_fallback(text: str, file: str) -> list[Document] | FieldError | None:
    """JSON that libyaml refuses (surrogate-pair escapes) but the json module reads (no lines);
    a problem for duplicate keys; None when it is not JSON either."""
    if text.lstrip()[:1] not in ("{", "["):
        return None
    import json  # only for this rare input: a run without it starts faster

    try:
        value = json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKeyError as exc:
        return FieldError(f"duplicate key {exc.key!r}", file=file)
    except (ValueError, RecursionError):
        return None
    return [Document(content=value, file=file, line=1, index=0)]


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def parse_text(text: str, *, file: str) -> tuple[list[Document], list[FieldError]]:
    """Every non-empty document of a YAML (or JSON) stream, or the problems that stop it.

    Empty documents (``---`` with nothing after it, comments only) are skipped, as kubectl does.
    After a syntax error the rest of the stream cannot be trusted, so reading stops there.
    """
    documents: list[Document] = []
    index = 0
    builder = _Builder(len(text))  # one per file: the bound covers the whole stream
    try:
        for node in yaml.compose_all(text, Loader=_Loader):
            if node is None or (isinstance(node, ScalarNode) and _scalar(node) is None):
                index += 1
                continue
            line = node.start_mark.line + 1
            try:
                # A top-level list is rejected whatever it holds: do not build its items.
                content = LineList(line) if isinstance(node, SequenceNode) else builder.build(node)
            except _Problem as problem:
                return documents, [
                    FieldError(problem.message, file=file, line=problem.line or line)
                ]
            documents.append(Document(content=content, file=file, line=line, index=index))
            index += 1
    except yaml.YAMLError as exc:
        fallback = _json_fallback(text, file)
        if isinstance(fallback, FieldError):
            return [], [fallback]
        if fallback is not None:
            return fallback, []
        return documents, [_yaml_error(exc, text, file)]
    except RecursionError:
        return documents, [FieldError(f"nesting deeper than {MAX_DEPTH} levels", file=file)]
    return documents, []
