"""A ruleset update leaves the kernel with exactly the table a whole install would (root).

``ruleset_update(A, B)`` replaces only what differs between two plans; these tests load A's
text, apply the update, and compare the kernel's listing, block by block, with B's text loaded
whole in a second namespace: over every pair of golden cases, over random clusters, and through
``Sandbox.apply``. The
namespaces (``kfupd-<random>``) are throwaway and removed whatever happens.
"""

from __future__ import annotations

import itertools
import re
import secrets
import subprocess
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.golden.test_golden import CASES, plan_case
from tests.netns.conftest import (
    ALLOW_POLICY,
    DENY_ALL_INGRESS,
    QUICKSTART_PODS,
    SandboxMaker,
    inventory_of,
)
from tests.unit.dataplane.test_nft_plan import _clusters, addresses_of

from kubefence.api import Inventory
from kubefence.dataplane.nft import (
    RulesetPlan,
    plan_ruleset,
    render_plan,
    render_ruleset,
    ruleset_update,
)

pytestmark = pytest.mark.netns

_BLOCK = re.compile(r"(?ms)^\t(set|map|chain) (\S+) \{\n.*?^\t\}$")


def _run(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60)


def _nft(namespace: str, *args: str, stdin: str | None = None) -> None:
    done = _run("ip", "netns", "exec", namespace, "nft", *args, stdin=stdin)
    assert done.returncode == 0, done.stderr


def _listing(namespace: str) -> dict[tuple[str, str], str]:
    """The kernel's table as {(kind, name): block}: the order of chains and sets in a listing
    follows their creation, which an update changes, so blocks are compared, not order."""
    done = _run("ip", "netns", "exec", namespace, "nft", "list", "table", "inet", "kubefence")
    assert done.returncode == 0, done.stderr
    return {(m.group(1), m.group(2)): m.group(0) for m in _BLOCK.finditer(done.stdout)}


@pytest.fixture(scope="module")
def namespaces() -> Iterator[tuple[str, str]]:
    """Two fresh namespaces: one updated step by step, one loaded whole for comparison."""
    names = (f"kfupd-{secrets.token_hex(4)}", f"kfupd-{secrets.token_hex(4)}")
    try:
        for name in names:
            created = _run("ip", "netns", "add", name)
            assert created.returncode == 0, created.stderr
        yield names
    finally:
        for name in names:
            _run("ip", "netns", "delete", name)


def _check_transition(namespaces: tuple[str, str], before: RulesetPlan, after: RulesetPlan) -> bool:
    """Load ``before``, apply the update to ``after`` (if there is one) and compare with
    ``after`` loaded whole; False when ``ruleset_update`` declined (a whole install)."""
    updated, whole = namespaces
    update = ruleset_update(before, after)
    if update is None:
        return False
    _nft(updated, "-f", "-", stdin=render_plan(before))
    if update:
        _nft(updated, "-f", "-", stdin=update)
    _nft(whole, "-f", "-", stdin=render_plan(after))
    assert _listing(updated) == _listing(whole)
    return True


def test_golden_pairs_update_to_the_same_kernel_table(namespaces: tuple[str, str]) -> None:
    """For every ordered pair of golden cases the update (when there is one) yields the
    kernel table the second one yields whole; most pairs do have an update."""
    plans = [plan_case(case) for case in sorted(CASES)]
    updated = [_check_transition(namespaces, a, b) for a, b in itertools.permutations(plans, 2)]
    assert sum(updated) >= len(updated) // 2


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=25, deadline=None)
@given(st.lists(_clusters(), min_size=2, max_size=3))
def test_s04_random_cluster_changes_update_to_the_same_kernel_table(
    namespaces: tuple[str, str], clusters: list[Inventory]
) -> None:
    """Random clusters rendered one after the other: each step's update leaves the kernel
    with the table the step's whole text gives."""
    plans = [plan_ruleset(c, addresses=addresses_of(c)) for c in clusters]
    for before, after in itertools.pairwise(plans):
        _check_transition(namespaces, before, after)


def test_s25_sandbox_apply_updates_in_place_unless_another_installed(
    make_sandbox: SandboxMaker, namespaces: tuple[str, str]
) -> None:
    """``Sandbox.apply`` swaps policies with an update that leaves the same table as a whole
    install; once ``ruleset.nft`` no longer holds what it installed (another process did), it
    installs the whole table."""
    first = inventory_of(QUICKSTART_PODS + ALLOW_POLICY)
    second = inventory_of(QUICKSTART_PODS + DENY_ALL_INGRESS)
    sandbox = make_sandbox(first)
    report = sandbox.apply(second)
    assert report.ruleset == "update"
    wanted = (sandbox.directory / "ruleset.nft").read_text()
    _nft(namespaces[1], "-f", "-", stdin=wanted)
    assert _listing(sandbox.state.node_netns) == _listing(namespaces[1])
    assert sandbox.apply(second).ruleset == "unchanged"
    (sandbox.directory / "ruleset.nft").write_text("# installed by someone else\n")
    assert sandbox.apply(first).ruleset == "full"
    assert sandbox.apply(second, whole_table=True).ruleset == "full"
    assert sandbox.apply(first).ruleset == "update"


def test_a_renderer_of_text_only_installs_the_whole_table_or_nothing(
    make_sandbox: SandboxMaker,
) -> None:
    """A renderer other than ``MemoisedRenderer`` gives no plan to compare: a changed text is
    installed whole, the same text not at all; the next apply with the sandbox's own renderer
    has no installed plan to compare with (whole table), the one after updates again."""
    first = inventory_of(QUICKSTART_PODS + ALLOW_POLICY)
    second = inventory_of(QUICKSTART_PODS + DENY_ALL_INGRESS)
    sandbox = make_sandbox(first)
    assert sandbox.apply(second, renderer=render_ruleset).ruleset == "full"
    assert sandbox.apply(second, renderer=render_ruleset).ruleset == "unchanged"
    assert sandbox.apply(first).ruleset == "full"
    assert sandbox.apply(second).ruleset == "update"
