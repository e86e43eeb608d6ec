"""Every golden ruleset is valid nftables for the real ``nft`` and kernel (root, marker netns).

The checks run in a throwaway network namespace (``kfsyn-<random>``), never in the host's root
namespace, which is deleted again whatever happens. Each golden file is syntax-checked with
``nft -c -f``, loaded twice (the second load exercises the replace-the-existing-table idiom) and
listed back; SCTP rules are included although this kernel may have no SCTP sockets.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.netns

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "golden"
GOLDEN_FILES = sorted(GOLDEN_DIR.glob("*.nft"))


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def namespace() -> Iterator[str]:
    """A fresh, empty network namespace, removed at the end even when a test failed."""
    name = f"kfsyn-{secrets.token_hex(4)}"
    created = _run("ip", "netns", "add", name)
    assert created.returncode == 0, created.stderr
    try:
        yield name
    finally:
        _run("ip", "netns", "delete", name)


def _nft(namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    return _run("ip", "netns", "exec", namespace, "nft", *args)


def test_golden_files_exist() -> None:
    """The syntax check has something to check (a missing golden directory is a failure)."""
    assert len(GOLDEN_FILES) >= 10


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=[p.stem for p in GOLDEN_FILES])
def test_golden_ruleset_passes_nft_check_and_loads(namespace: str, path: Path) -> None:
    """nft accepts the file (-c), loads it over an existing table, and lists it back."""
    checked = _nft(namespace, "-c", "-f", str(path))
    assert checked.returncode == 0, f"nft -c {path.name}:\n{checked.stderr}"
    for attempt in (1, 2):  # the second load replaces the table the first one created
        loaded = _nft(namespace, "-f", str(path))
        assert loaded.returncode == 0, f"nft -f {path.name} (load {attempt}):\n{loaded.stderr}"
    listed = _nft(namespace, "list", "table", "inet", "kubefence")
    assert listed.returncode == 0, listed.stderr
    text = path.read_text(encoding="utf-8")
    for line in text.splitlines():
        words = line.split()
        if words[:1] in (["chain"], ["set"], ["map"]):
            assert f"{words[0]} {words[1]} {{" in listed.stdout, f"{words[1]} not loaded"
    assert listed.stdout.count("chain ") == text.count("\tchain ")


def test_replacing_a_ruleset_leaves_no_stale_chain(namespace: str) -> None:
    """Loading a small ruleset after a big one leaves only the small one's chains (atomic
    replace, not merge)."""
    big = GOLDEN_DIR / "walkthrough-5-default-deny.nft"
    small = GOLDEN_DIR / "walkthrough-1-no-policy.nft"
    assert _nft(namespace, "-f", str(big)).returncode == 0
    assert _nft(namespace, "-f", str(small)).returncode == 0
    listed = _nft(namespace, "list", "table", "inet", "kubefence").stdout
    assert "_c1" not in listed
    assert "chain forward" in listed
