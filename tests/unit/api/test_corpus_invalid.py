"""Every manifest in ``tests/corpus/invalid`` is rejected with exactly the problems it declares.

Each file starts with a comment saying what is wrong and one ``# expect: <field path>@<line>:
<message>`` line per problem (``<file>`` in a message stands for the file's own path). The test
loads the file through the real loader and compares the reported problems, each as (path, line,
message), with the declared ones as multisets: a missed problem, a spurious one, a moved line and
a changed message all fail.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kubefence.errors import ValidationError
from kubefence.sources.files import load_paths

CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "invalid"
_EXPECT = re.compile(r"^# expect: (?P<path>[^@]*)@(?P<line>\d+): (?P<message>.+)$")


def _cases() -> list[Path]:
    return sorted(CORPUS.glob("*.yaml"))


def _expected(path: Path) -> list[tuple[str, int, str]]:
    """The declared problems; a malformed ``# expect`` line fails rather than being skipped."""
    expected = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("# expect"):
            continue
        match = _EXPECT.match(line)
        assert match is not None, f"malformed expectation in {path.name}: {line}"
        expected.append((match["path"], int(match["line"]), match["message"]))
    return sorted(expected)


@pytest.mark.parametrize("manifest", _cases(), ids=lambda p: p.stem)
def test_invalid_manifest_reports_declared_problems(manifest: Path) -> None:
    """Loading the manifest fails with exactly its declared paths, lines and messages."""
    expected = _expected(manifest)
    assert expected, "every case declares the problems it must yield"
    with pytest.raises(ValidationError) as caught:
        load_paths([str(manifest)])
    problems = caught.value.problems
    assert all(p.file == str(manifest) for p in problems)
    got = sorted(
        (p.path, p.line if p.line is not None else -1, p.message.replace(str(manifest), "<file>"))
        for p in problems
    )
    assert got == expected, "\n".join(str(p) for p in problems)
