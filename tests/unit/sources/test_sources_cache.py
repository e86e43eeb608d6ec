"""The inventory cache (``sources._cache``) reuses a load only when nothing that shapes it
changed, never serves what it cannot trust, and never changes what a load reports."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kubefence.api import Document
from kubefence.errors import ValidationError
from kubefence.sources import _cache, files
from kubefence.sources.files import load_paths

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers: [{name: c, image: nginx}]
"""
BAD = POD.replace("name: web", "name: Web_")


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(_cache.CACHE_ENV, raising=False)
    return tmp_path / "xdg" / "kubefence" / "inventory"


def _entries(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.pickle")) if directory.exists() else []


def _manifest(tmp_path: Path, text: str = POD, name: str = "pod.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _no_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object) -> object:
        raise AssertionError("parsed although the cache holds this input")

    monkeypatch.setattr(files, "_parse_inputs", refuse)


def test_a_second_load_of_the_same_bytes_comes_from_the_cache(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _manifest(tmp_path)
    first = load_paths([path], cache=True)
    assert len(_entries(cache_home)) == 1
    assert stat.S_IMODE(cache_home.stat().st_mode) == 0o700
    _no_parsing(monkeypatch)
    again = load_paths([path], cache=True)
    assert again == first
    assert again.pods[0].origin == first.pods[0].origin


def test_without_cache_true_nothing_is_read_or_written(tmp_path: Path, cache_home: Path) -> None:
    load_paths([_manifest(tmp_path)])
    assert _entries(cache_home) == []


@pytest.mark.parametrize("setting", ["off", "0", "no", "FALSE"])
def test_the_environment_turns_the_cache_off(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    monkeypatch.setenv(_cache.CACHE_ENV, setting)
    load_paths([_manifest(tmp_path)], cache=True)
    assert _entries(cache_home) == []


def test_changed_bytes_names_or_namespace_miss(tmp_path: Path, cache_home: Path) -> None:
    path = _manifest(tmp_path)
    load_paths([path], cache=True)
    Path(path).write_text(POD.replace("app: web", "app: api"))
    changed = load_paths([path], cache=True)
    assert dict(changed.pods[0].labels) == {"app": "api"}
    other_name = _manifest(tmp_path, name="copy.yaml")
    renamed = load_paths([other_name], cache=True)
    assert renamed.pods[0].origin is not None
    assert renamed.pods[0].origin.file == other_name
    elsewhere = load_paths([path], cache=True, default_namespace="shop")
    assert elsewhere.pods[0].namespace == "shop"
    assert len(_entries(cache_home)) == 4


def test_other_code_misses(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry written by another version of the loading code is never used."""
    path = _manifest(tmp_path)
    load_paths([path], cache=True)
    real = _cache._code_fingerprint
    monkeypatch.setattr(_cache, "_code_fingerprint", lambda: real() + b"edited")
    load_paths([path], cache=True)
    assert len(_entries(cache_home)) == 2


def test_invalid_input_is_never_stored_and_reports_the_same_each_time(
    tmp_path: Path, cache_home: Path
) -> None:
    path = _manifest(tmp_path, BAD)
    messages = []
    for _ in range(2):
        with pytest.raises(ValidationError) as caught:
            load_paths([path], cache=True)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    assert "line 4" in messages[0] or ":4:" in messages[0]
    assert _entries(cache_home) == []


def test_a_missing_file_among_good_ones_is_reported_and_nothing_stored(
    tmp_path: Path, cache_home: Path
) -> None:
    with pytest.raises(ValidationError, match="no such file"):
        load_paths([_manifest(tmp_path), str(tmp_path / "gone.yaml")], cache=True)
    assert _entries(cache_home) == []


def test_a_corrupt_entry_is_a_miss_and_is_replaced(tmp_path: Path, cache_home: Path) -> None:
    path = _manifest(tmp_path)
    first = load_paths([path], cache=True)
    (entry,) = _entries(cache_home)
    entry.write_bytes(b"\x80\x05not a pickle")
    assert load_paths([path], cache=True) == first
    (entry,) = _entries(cache_home)
    assert entry.read_bytes() != b"\x80\x05not a pickle"


@pytest.mark.parametrize("target", ["entry", "directory"])
def test_entries_others_could_write_are_not_trusted(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    path = _manifest(tmp_path)
    load_paths([path], cache=True)
    (entry,) = _entries(cache_home)
    writable = entry if target == "entry" else cache_home
    writable.chmod(writable.stat().st_mode | stat.S_IWOTH)
    calls = []
    parse = files._parse_inputs

    def counting(*args: object) -> object:
        calls.append(1)
        return parse(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(files, "_parse_inputs", counting)
    load_paths([path], cache=True)
    assert calls == [1]


def test_the_directory_keeps_at_most_max_entries(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The least recently used go first (ages set by hand: coarse clocks would tie)."""
    monkeypatch.setattr(_cache, "MAX_ENTRIES", 3)
    stamped: dict[Path, int] = {}
    for number in range(5):
        load_paths([_manifest(tmp_path, POD.replace("web", f"web{number}"))], cache=True)
        for entry in _entries(cache_home):
            if entry not in stamped:
                stamped[entry] = number
                os.utime(entry, ns=(number * 10**9, number * 10**9))
    assert _entries(cache_home) == sorted(e for e, n in stamped.items() if n >= 2)


def test_an_unwritable_cache_is_no_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # a file where a directory should be
    path = _manifest(tmp_path)
    assert load_paths([path], cache=True) == load_paths([path])


def test_stdin_is_cached_by_its_bytes(tmp_path: Path, cache_home: Path) -> None:
    import io

    first = load_paths(["-"], cache=True, stdin=io.BytesIO(POD.encode()))
    again = load_paths(["-"], cache=True, stdin=io.BytesIO(POD.encode()))
    other = load_paths(["-"], cache=True, stdin=io.BytesIO(POD.replace("web", "db").encode()))
    assert first == again != other
    assert len(_entries(cache_home)) == 2


def test_a_cli_run_served_from_the_cache_does_not_import_yaml(
    tmp_path: Path, cache_home: Path
) -> None:
    """The point of the cache: the second ``validate`` on unchanged files neither imports the
    YAML reader nor parses, and prints the same."""
    import json
    import subprocess
    import sys

    path = _manifest(tmp_path)
    code = (
        "import sys, json, contextlib, io\n"
        "from kubefence.cli.main import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    main(['validate', '-f', {path!r}])\n"
        "print(json.dumps([out.getvalue(), 'yaml' in sys.modules]))\n"
    )
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout.splitlines()[-1]
        )
        for _ in range(2)
    ]
    assert runs[0] == [runs[1][0], True]
    assert runs[1][1] is False
    assert "1 pods" in runs[0][0] or "1 pod" in runs[0][0]


def test_a_store_that_fails_leaves_no_entry_and_no_error(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: object) -> None:
        raise TypeError("cannot pickle this")

    monkeypatch.setattr(_cache, "_dump", refuse)
    path = _manifest(tmp_path)
    assert load_paths([path], cache=True) == load_paths([path])
    assert list(cache_home.iterdir()) == []


def test_temporary_files_of_dead_runs_are_removed_when_old(
    tmp_path: Path, cache_home: Path
) -> None:
    load_paths([_manifest(tmp_path)], cache=True)
    old, young = cache_home / "dead.tmp", cache_home / "writing.tmp"
    for leftover in (old, young):
        leftover.write_bytes(b"partial")
    os.utime(old, ns=(0, 0))
    load_paths([_manifest(tmp_path, POD.replace("web", "api"))], cache=True)
    assert not old.exists()
    assert young.exists()


@pytest.mark.parametrize("example", ["multi-tenant", "quickstart", "tutorial", "workloads"])
def test_entries_round_trip_the_examples(cache_home: Path, example: str) -> None:
    """Services, workloads, policies with every peer kind, notes and line maps come back."""
    path = str(Path(__file__).resolve().parents[3] / "examples" / example)
    first = load_paths([path], cache=True)
    assert len(_entries(cache_home)) == 1
    again = load_paths([path], cache=True)
    assert again == first
    assert again.notes == first.notes
    assert [p.lines for p in again.policies] == [p.lines for p in first.policies]


def test_a_load_that_keeps_some_documents_is_not_stored(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``keep`` chooses the documents loaded; only a load that kept them all is stored (an
    entry stands for the whole input), and a hit does not call ``keep``."""
    path = _manifest(tmp_path, POD + "---\n" + POD.replace("web", "api"))
    seen: list[int] = []

    def first_only(documents: list[Document]) -> list[Document]:
        seen.append(len(documents))
        return documents[:1]

    partial = load_paths([path], cache=True, keep=first_only)
    assert [p.name for p in partial.pods] == ["web"]
    assert seen == [2]
    assert _entries(cache_home) == []

    def every(documents: list[Document]) -> list[Document]:
        seen.append(0)
        return documents

    whole = load_paths([path], cache=True, keep=every)
    assert [p.name for p in whole.pods] == ["api", "web"]
    assert len(_entries(cache_home)) == 1
    _no_parsing(monkeypatch)
    assert load_paths([path], cache=True, keep=first_only) == whole
    assert seen == [2, 0]
    assert load_paths([path], keep=None, cache=True) == whole
