"""Our YAML loader against PyYAML's pure-Python SafeLoader: same values, same lines.

Why this module exists: ``sources._yaml`` composes with libyaml (C) and defers tag resolution
and the resolver's path bookkeeping to its own code, for speed. These tests pin that the result
is still what the YAML 1.1 rules every Kubernetes manifest author relies on give: for every YAML
file of this repository and for generated streams full of look-alike scalars (``yes``, ``0o17``,
``1_000``, ``~``, timestamps, quoted and plain), the values equal PyYAML's pure SafeLoader's
(timestamps and binary kept as text, as our loader keeps them), and each mapping key and list
item is on the line where the reference composer found it. Our deliberate refusals (duplicate
keys, alias bombs, deep nesting) are the only inputs the reference may accept and we not.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from kubefence.api import LineDict, LineList
from kubefence.sources._yaml import parse_text

ROOT = Path(__file__).resolve().parents[3]
YAML_FILES = sorted(
    p
    for top in ("tests", "examples")
    for p in (ROOT / top).rglob("*")
    if p.suffix in (".yaml", ".yml") and p.is_file()
)
_REFUSALS = ("duplicate key", "nesting deeper", "alias", "merge key", "mapping keys")


class _Reference(yaml.SafeLoader):
    """The pure-Python loader, with timestamps and binary left as text and every scalar key
    as its text (``on:`` is the key "on", not True): our loader's rules for Kubernetes."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)  # merge keys, as SafeLoader does
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = (
                key_node.value
                if isinstance(key_node, ScalarNode)
                else self.construct_object(key_node, deep=deep)
            )
            result[key] = self.construct_object(value_node, deep=deep)
        return result


def _as_text(loader: yaml.SafeLoader, node: Node) -> Any:
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_Reference.add_constructor("tag:yaml.org,2002:timestamp", _as_text)
_Reference.add_constructor("tag:yaml.org,2002:binary", _as_text)


def _reference(text: str) -> tuple[list[Any], list[Node]] | None:
    """The reference's documents (values and composed nodes), None where it refuses the text."""
    try:
        values = list(yaml.load_all(text, Loader=_Reference))  # a SafeLoader
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except (yaml.YAMLError, RecursionError, TypeError, ValueError):
        return None
    kept = [(v, n) for v, n in zip(values, nodes, strict=True) if v is not None]
    return [v for v, _ in kept], [n for _, n in kept]


def _same(ours: Any, theirs: Any) -> bool:
    if isinstance(theirs, float) and math.isnan(theirs):
        return isinstance(ours, float) and math.isnan(ours)
    if isinstance(theirs, dict):
        return (
            isinstance(ours, dict)
            and ours.keys() == theirs.keys()  # merged keys come last in ours, first in theirs
            and all(_same(ours[k], theirs[k]) for k in theirs)
        )
    if isinstance(theirs, list):
        return (
            isinstance(ours, list)
            and len(ours) == len(theirs)
            and all(_same(a, b) for a, b in zip(ours, theirs, strict=True))
        )
    return type(ours) is type(theirs) and ours == theirs


def _has_merge(node: Node, seen: set[int] | None = None) -> bool:
    seen = set() if seen is None else seen
    if id(node) in seen:
        return False
    seen.add(id(node))
    if isinstance(node, MappingNode):
        return any(
            k.tag == "tag:yaml.org,2002:merge" or _has_merge(k, seen) or _has_merge(v, seen)
            for k, v in node.value
        )
    if isinstance(node, SequenceNode):
        return any(_has_merge(item, seen) for item in node.value)
    return False


def _check_lines(ours: Any, node: Node) -> None:
    """Each key and item of ``ours`` is on the line of the reference's node for it."""
    if isinstance(node, MappingNode):
        assert isinstance(ours, LineDict)
        assert ours.line == node.start_mark.line + 1
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                continue  # a mapping as a key is refused before lines matter
            key = key_node.value
            assert ours.key_lines[key] == key_node.start_mark.line + 1, key
            _check_lines(ours[key], value_node)
    elif isinstance(node, SequenceNode):
        assert isinstance(ours, LineList)
        assert ours.line == node.start_mark.line + 1
        assert ours.item_lines == [item.start_mark.line + 1 for item in node.value]
        for item, item_node in zip(ours, node.value, strict=True):
            _check_lines(item, item_node)
    else:
        assert isinstance(node, ScalarNode)


def _compare(text: str) -> None:
    documents, problems = parse_text(text, file="f.yaml")
    reference = _reference(text)
    if reference is None:
        return  # the reference refuses it: ours must only not crash (test_sources_fuzz)
    values, nodes = reference
    if problems:
        assert any(r in p.message for p in problems for r in _REFUSALS), problems
        return
    assert len(documents) == len(values)
    for document, value, node in zip(documents, values, nodes, strict=True):
        if isinstance(node, SequenceNode):
            assert document.content == []  # a top-level list is rejected unbuilt
            continue
        assert _same(document.content, value), (document.content, value)
        assert document.line == node.start_mark.line + 1
        if not _has_merge(node):
            _check_lines(document.content, node)


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_yaml_file_of_the_repository_reads_as_the_reference_reads_it(path: Path) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        pytest.skip("not UTF-8: decode_bytes reports it before parsing")
    _compare(text)


def test_the_repository_has_yaml_files_to_compare() -> None:
    assert len(YAML_FILES) > 50


# Plain scalars that YAML 1.1 resolves to something other than text, and their near misses.
_TOKENS = [
    "yes", "No", "ON", "off", "y", "n", "true", "False", "TRUE", "~", "null", "Null", "NULL",
    "0", "-0", "+12", "012", "0o17", "0x1F", "0b101", "1_000", "1:20", "190:20:30", "08", "09",
    "1.5", "1e3", "1.0e+3", "-.inf", ".NaN", ".Inf", "6.8523015e+5", "685_230.15", "1.", ".5",
    "2001-12-14", "2001-12-14t21:59:43.10-05:00", "2002-12-14 21:59:43.10 -5", "2001-1-1",
    "=", "<<x", "a b", "tcp", "TCP", "80", "65535", "99999999999999999999", "198.18.0.1/24",
    "fd00::1", "app.kubernetes.io/name", "-", "--x",
]  # fmt: skip

_scalar = st.one_of(
    st.sampled_from(_TOKENS),
    st.sampled_from(_TOKENS).map(lambda t: f"'{t}'"),
    st.sampled_from(_TOKENS).map(lambda t: f'"{t}"'),
    st.text(alphabet="abcxyz019-_.", min_size=1, max_size=6).filter(
        lambda t: t[0] not in "-." and t not in ("y", "n")
    ),
)
_keys = st.sampled_from(["a", "b", "name", "port", "on", "yes", "1", "x-y", "~"])


def _block(value: Any, indent: int) -> list[str]:
    """Lines of a block-style rendering; ``value`` is a scalar text, a dict or a list."""
    pad = " " * indent
    if isinstance(value, dict):
        lines: list[str] = []
        for key, item in value.items():
            if isinstance(item, str):
                lines.append(f"{pad}{key}: {item}")
            elif not item:
                lines.append(f"{pad}{key}: {'{}' if isinstance(item, dict) else '[]'}")
            else:
                lines.append(f"{pad}{key}:")
                lines.extend(_block(item, indent + 2))
        return lines
    lines = []
    for item in value:
        if isinstance(item, str):
            lines.append(f"{pad}- {item}")
        elif not item:
            lines.append(f"{pad}- {'{}' if isinstance(item, dict) else '[]'}")
        else:
            lines.append(f"{pad}-")
            lines.extend(_block(item, indent + 2))
    return lines


_trees = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(_keys, inner, max_size=4),
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.dictionaries(_keys, _trees, min_size=1, max_size=5), min_size=1, max_size=3))
def test_generated_streams_read_as_the_reference_reads_them(documents: list[Any]) -> None:
    text = "".join("---\n" + "\n".join(_block(doc, 0)) + "\n" for doc in documents)
    _compare(text)


@settings(max_examples=100, deadline=None)
@given(_trees)
def test_generated_flow_values_read_as_the_reference_reads_them(tree: Any) -> None:
    def flow(value: Any) -> str:
        if isinstance(value, dict):
            return "{" + ", ".join(f"{k}: {flow(v)}" for k, v in value.items()) + "}"
        if isinstance(value, list):
            return "[" + ", ".join(flow(v) for v in value) + "]"
        return str(value)

    _compare(f"root: {flow(tree)}\nnext:\n  - {flow(tree)}\n")


def test_tags_aliases_and_merge_keys_read_as_the_reference_reads_them() -> None:
    _compare(
        "base: &b {port: 80, name: web}\n"
        "copy: *b\n"
        "merged:\n  <<: *b\n  name: api\n"
        "tagged: !!str 0o17\n"
        "number: !!int '12'\n"
        "float: !!float '1'\n"
        "bool: !!bool 'yes'\n"
        "nothing: !!null ''\n"
        "text: ! 12\n"
        "when: !!timestamp 2001-12-14\n"
        "list: &l [a, *b]\n"
        "again: *l\n"
        "block: |\n  one\n  two\n"
        "folded: >-\n  one\n  two\n"
    )
