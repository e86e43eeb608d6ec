"""The loader's input forms (files, directories, stdin, JSON, List, multi-document) and its
refusals (broken YAML, bad bytes, duplicate keys, alias bombs, deep nesting), all as clean
``ValidationError``s that name the file and line."""

from __future__ import annotations

import io
import json
import tracemalloc
from pathlib import Path

import pytest

from kubefence.errors import InputError, ValidationError
from kubefence.sources import files
from kubefence.sources.files import load_paths

NS = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"
POLICY = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {name}
  namespace: test
spec:
  podSelector:
    matchLabels: {{app: web}}
  ingress:
    - from:
        - podSelector: {{}}
        - namespaceSelector: {{}}
      ports:
        - port: 80
  egress:
    - to:
        - ipBlock:
            cidr: 198.18.0.0/15
"""


def write(path: Path, text: str | bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def rejected(*paths: str, stdin: bytes | None = None) -> list[tuple[str | None, int | None, str]]:
    with pytest.raises(ValidationError) as caught:
        load_paths(list(paths), stdin=io.BytesIO(stdin) if stdin is not None else None)
    return [(p.file, p.line, p.message) for p in caught.value.problems]


# --- input forms ---------------------------------------------------------------------------------


def test_multi_document_yaml_with_origins_and_lines(tmp_path: Path) -> None:
    """Documents of one file keep their start line and index; policies record field lines."""
    file = write(
        tmp_path / "all.yaml",
        "# comment\n" + NS.format(name="test") + "---\n" + POLICY.format(name="p"),
    )
    inv = load_paths([file])
    [ns] = [n for n in inv.namespaces if n.name == "test"]
    assert ns.origin is not None
    assert (ns.origin.file, ns.origin.line, ns.origin.document) == (file, 2, 0)
    [policy] = inv.policies
    assert policy.origin is not None
    assert (policy.origin.line, policy.origin.document) == (7, 1)
    assert dict(policy.lines) == {
        "spec.podSelector": 13,
        "spec.ingress[0]": 16,
        "spec.ingress[0].from[0]": 17,
        "spec.ingress[0].from[1]": 18,
        "spec.ingress[0].ports[0]": 20,
        "spec.egress[0]": 22,
        "spec.egress[0].to[0]": 23,
    }
    assert policy.line_of("spec.ingress[0].from[1].namespaceSelector") == 18


def test_directory_is_read_recursively_in_sorted_order(tmp_path: Path) -> None:
    """Directories are walked recursively; only .yaml/.yml/.json; hidden entries are skipped."""
    write(tmp_path / "b.yaml", NS.format(name="b"))
    write(tmp_path / "a" / "z.yml", NS.format(name="az"))
    write(
        tmp_path / "c.json",
        json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "c"}}),
    )
    write(tmp_path / "notes.txt", "not: a manifest")
    write(tmp_path / ".hidden.yaml", "{{{ broken")
    write(tmp_path / ".git" / "x.yaml", "{{{ broken")
    inv = load_paths([str(tmp_path)])
    files = [ns.origin.file for ns in inv.namespaces if ns.origin is not None]
    assert sorted(files) == sorted(str(tmp_path / f) for f in ("a/z.yml", "b.yaml", "c.json"))
    assert {ns.name for ns in inv.namespaces} == {"az", "b", "c"}


def test_repeated_paths_and_stdin(tmp_path: Path) -> None:
    """Several -f values combine, '-' reads stdin, and the same file twice is read once."""
    first = write(tmp_path / "one.yaml", NS.format(name="one"))
    inv = load_paths([first, "-", first], stdin=io.BytesIO(NS.format(name="two").encode()))
    assert [ns.name for ns in inv.namespaces] == ["one", "two"]
    [two] = [ns for ns in inv.namespaces if ns.name == "two"]
    assert two.origin is not None
    assert two.origin.file == "-"


def test_json_file_keeps_line_numbers(tmp_path: Path) -> None:
    """Pretty-printed JSON is read with lines, so problems point into it."""
    obj = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "p"},
        "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 0}]}]},
    }
    file = write(tmp_path / "p.json", json.dumps(obj, indent=2))
    [(name, line, message)] = rejected(file)
    assert name == file
    lines = json.dumps(obj, indent=2).splitlines()
    assert line == next(i for i, text in enumerate(lines, 1) if '"port": 0' in text)
    assert "1 and 65535" in message


def test_json_that_libyaml_refuses_falls_back_to_the_json_reader(tmp_path: Path) -> None:
    """JSON with a surrogate-pair escape (an emoji), which libyaml refuses, is still read."""
    text = (
        '{"apiVersion": "v1", "kind": "Namespace",\n'
        ' "metadata": {"name": "t", "annotations": {"note": "\\ud83d\\ude00"}}}\n'
    )
    inv = load_paths([write(tmp_path / "t.json", text)])
    assert [ns.name for ns in inv.namespaces] == ["t"]


def test_json_fallback_still_refuses_duplicate_keys(tmp_path: Path) -> None:
    """The JSON reader used as a fallback does not let a duplicate key win silently."""
    text = '{"kind": "Namespace", "kind": "Pod", "x": "\\ud83d\\ude00"}'
    [(_, _, message)] = rejected(write(tmp_path / "d.json", text))
    assert message == "duplicate key 'kind'"


def test_kind_list_from_kubectl_get(tmp_path: Path) -> None:
    """``kind: List`` (as ``kubectl get -o yaml`` prints) yields its items with their lines."""
    text = "apiVersion: v1\nkind: List\nitems:\n" + "".join(
        f"  - apiVersion: v1\n    kind: Namespace\n    metadata:\n      name: n{i}\n"
        for i in range(2)
    )
    inv = load_paths([write(tmp_path / "list.yaml", text)])
    assert [(ns.name, ns.origin.line if ns.origin else None) for ns in inv.namespaces] == [
        ("n0", 4),
        ("n1", 8),
    ]


def test_bom_and_utf16_are_decoded(tmp_path: Path) -> None:
    """A UTF-8 BOM and UTF-16 with a BOM are accepted."""
    a = write(tmp_path / "a.yaml", b"\xef\xbb\xbf" + NS.format(name="a").encode())
    b = write(tmp_path / "b.yaml", NS.format(name="b").encode("utf-16"))
    assert [ns.name for ns in load_paths([a, b]).namespaces] == ["a", "b"]


def test_yaml_merge_keys_and_anchors(tmp_path: Path) -> None:
    """Anchors, aliases and ``<<`` merge keys work as in kubectl."""
    text = """apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Pod
    metadata:
      name: a
      labels: &common {app: web, tier: front}
    spec: &spec
      containers: [{name: a, image: x}]
  - apiVersion: v1
    kind: Pod
    metadata:
      name: b
      labels:
        <<: *common
        tier: back
    spec: *spec
"""
    inv = load_paths([write(tmp_path / "m.yaml", text)])
    assert [dict(p.labels) for p in inv.pods] == [
        {"app": "web", "tier": "front"},
        {"app": "web", "tier": "back"},
    ]


def test_empty_documents_and_comment_only_files_are_skipped(tmp_path: Path) -> None:
    """``---`` separators without content and comment-only files add nothing."""
    a = write(tmp_path / "a.yaml", "---\n---\n" + NS.format(name="a") + "---\n...\n")
    b = write(tmp_path / "b.yaml", "# nothing here\n")
    assert [ns.name for ns in load_paths([a, b]).namespaces] == ["a"]


def test_no_paths_is_a_usage_error() -> None:
    """Calling the loader without any path is an InputError, not an empty cluster."""
    with pytest.raises(InputError):
        load_paths([])


# --- refusals ------------------------------------------------------------------------------------


def test_missing_file_and_empty_directory(tmp_path: Path) -> None:
    """A missing path and a directory without manifests are both reported, together."""
    (tmp_path / "empty").mkdir()
    found = rejected(str(tmp_path / "nope.yaml"), str(tmp_path / "empty"))
    assert [(f, m) for f, _, m in found] == [
        (str(tmp_path / "empty"), "directory holds no manifests (.yaml, .yml or .json files)"),
        (str(tmp_path / "nope.yaml"), "no such file or directory"),
    ]


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    """Malformed YAML is reported at its line, and other files' problems are still listed."""
    bad = write(tmp_path / "bad.yaml", "a: 1\nb: [1, 2\nc: 3\n")
    other = write(tmp_path / "other.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {}\n")
    found = rejected(bad, other)
    assert [(f, line) for f, line, _ in found] == [(bad, 3), (other, 3)]
    assert found[0][2].startswith("invalid YAML")


def test_duplicate_keys_are_an_error(tmp_path: Path) -> None:
    """A key given twice is refused with both lines, instead of last-one-wins."""
    file = write(tmp_path / "d.yaml", "apiVersion: v1\nkind: Pod\nkind: Namespace\n")
    assert rejected(file) == [(file, 3, "duplicate key 'kind' (first at line 2)")]


@pytest.mark.parametrize(
    "data",
    [b"\x00\x01\x02\xff\xfe garbage", b"\x89PNG\r\n\x1a\n\x00\x00", b"a: b\n\xc3\x28\n"],
    ids=["nul-bytes", "png", "bad-utf8"],
)
def test_binary_garbage_is_a_clean_problem(tmp_path: Path, data: bytes) -> None:
    """Binary or undecodable input gives one problem with a line, never a traceback."""
    file = write(tmp_path / "bin.yaml", data)
    [(name, line, _)] = rejected(file)
    assert name == file
    assert line is not None


def test_control_characters_are_reported_at_their_line(tmp_path: Path) -> None:
    """A NUL inside otherwise valid UTF-8 YAML is reported at its line."""
    file = write(tmp_path / "c.yaml", "a: 1\nb: 2\nc: \x00\n")
    [(_, line, message)] = rejected(file)
    assert line == 3
    assert "unacceptable character" in message


def test_alias_bomb_is_bounded(tmp_path: Path) -> None:
    """A billion-laughs document fails fast with a clean message instead of exhausting memory."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    file = write(tmp_path / "bomb.yaml", "\n".join(lines) + "\n")
    [(_, _, message)] = rejected(file)
    assert "alias" in message


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    """An alias that contains itself is refused, not expanded forever."""
    [(_, line, message)] = rejected("-", stdin=b"a: &x\n  b: *x\n")
    assert line is not None
    assert "nesting" in message


@pytest.mark.parametrize("depth", [150, 5000])
def test_deep_nesting_is_refused(depth: int) -> None:
    """Absurdly nested documents (block or flow) are refused cleanly."""
    text = ("a: " + "[" * depth + "]" * depth).encode()
    [(name, _, message)] = rejected("-", stdin=text)
    assert name == "-"
    assert "nest" in message or "invalid YAML" in message


def test_top_level_scalar_is_not_an_object() -> None:
    """A document that is just a string is reported with its document number."""
    with pytest.raises(ValidationError) as caught:
        load_paths(["-"], stdin=io.BytesIO(b"hello\n"))
    [problem] = caught.value.problems
    assert problem.object == "document 1"
    assert "not a string" in problem.message


# --- reading limits ------------------------------------------------------------------------------


def test_reading_a_small_file_does_not_allocate_the_size_limit(tmp_path: Path) -> None:
    """A file is read at its size, not with one read of the 256 MiB limit (which would allocate
    the whole limit at once, whatever the input)."""
    path = write(tmp_path / "ns.yaml", NS.format(name="team-a"))
    tracemalloc.start()
    try:
        load_paths([path])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_size_limit_holds_for_files_and_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    """Input over the limit is refused, read in chunks; input at the limit is read whole."""
    monkeypatch.setattr(files, "MAX_FILE_BYTES", 3 * 1024 * 1024)
    monkeypatch.setattr(files, "_CHUNK_BYTES", 1024 * 1024)
    at_limit = NS.format(name="team-a").encode()
    at_limit += b"#" * (files.MAX_FILE_BYTES - len(at_limit) - 1) + b"\n"
    assert len(at_limit) == files.MAX_FILE_BYTES
    over = at_limit + b"#"
    if source == "file":
        assert [n.name for n in load_paths([write(tmp_path / "a.yaml", at_limit)]).namespaces] == [
            "team-a"
        ]
        assert rejected(write(tmp_path / "b.yaml", over)) == [
            (str(tmp_path / "b.yaml"), None, "larger than 3 MiB")
        ]
    else:
        cluster = load_paths(["-"], stdin=io.BytesIO(at_limit))
        assert [n.name for n in cluster.namespaces] == ["team-a"]
        assert rejected("-", stdin=over) == [("-", None, "larger than 3 MiB")]
