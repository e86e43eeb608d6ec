"""Every manifest in ``tests/corpus/invalid`` is rejected with exactly the problems it declares.

Each file starts with a comment saying what is wrong and ``# expect: <field path>@<line>``
lines. The test loads the file through the real loader and compares the set of (path, line) of
the reported problems with the declared set, so both a missed problem and a spurious one fail.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kubefence.errors import ValidationError
from kubefence.sources.files import load_paths

CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "invalid"
_EXPECT = re.compile(r"^# expect: (?P<path>[^@]*)@(?P<line>\d+)$", re.MULTILINE)


def _cases() -> list[Path]:
    return sorted(CORPUS.glob("*.yaml"))


def _expected(path: Path) -> set[tuple[str, int]]:
    text = path.read_text(encoding="utf-8")
    return {(m["path"], int(m["line"])) for m in _EXPECT.finditer(text)}


def test_corpus_has_at_least_thirty_invalid_manifests() -> None:
    """The invalid corpus stays large enough to cover every V rule and structural check."""
    assert len(_cases()) >= 30
    assert all(_expected(p) for p in _cases()), "every case declares its expected problems"


@pytest.mark.parametrize("manifest", _cases(), ids=lambda p: p.stem)
def test_invalid_manifest_reports_declared_problems(manifest: Path) -> None:
    """Loading the manifest fails with exactly its declared field paths and lines."""
    with pytest.raises(ValidationError) as caught:
        load_paths([str(manifest)])
    problems = caught.value.problems
    assert all(p.file == str(manifest) for p in problems)
    got = {(p.path, p.line) for p in problems}
    assert got == _expected(manifest), "\n".join(str(p) for p in problems)
