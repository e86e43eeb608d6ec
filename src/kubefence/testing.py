"""Assertions for users' own test suites: ``assert_reachable`` and ``assert_isolated``.

Why this module exists: teams keep their NetworkPolicies next to tests that say which
connections must work and which must not. A failing assertion should say *why*, so the message
is the same explanation ``kubefence explain`` prints (policies, rules, file:line).

    import kubefence
    from kubefence.testing import assert_isolated, assert_reachable

    def test_policies():
        cluster = kubefence.load("deploy/")
        assert_reachable(cluster, "shop/frontend", "shop/api", port=8080)
        assert_isolated(cluster, "default/debug", "shop/db", port=5432)

This module is the top layer of the import-linter contract, above ``cli``, because its
messages are the CLI's rendering of a ``Decision`` (``cli._render_decision``); no kubefence
module imports it.
"""

from __future__ import annotations

from kubefence.cli._render_decision import render_text
from kubefence.cluster import Cluster
from kubefence.semantics import Decision

__all__ = ["assert_isolated", "assert_reachable"]


def _describe(src: str, dst: str, port: int | str, protocol: str) -> str:
    return f"{src} -> {dst} on {port}/{protocol.upper()}"


def assert_reachable(
    cluster: Cluster, src: str, dst: str, *, port: int | str, protocol: str = "TCP"
) -> Decision:
    """Fail (``AssertionError`` with the explanation) unless ``src`` may connect to ``dst``;
    return the decision for further checks."""
    __tracebackhide__ = True
    decision = cluster.explain(src, dst, port=port, protocol=protocol)
    if not decision.allowed:
        raise AssertionError(
            f"expected {_describe(src, dst, port, protocol)} to be allowed, but it is "
            f"denied:\n{render_text(decision)}"
        )
    return decision


def assert_isolated(
    cluster: Cluster, src: str, dst: str, *, port: int | str, protocol: str = "TCP"
) -> Decision:
    """Fail (``AssertionError`` with the explanation) if ``src`` may connect to ``dst``; for a
    Service destination, if any backend would accept the connection."""
    __tracebackhide__ = True
    decision = cluster.explain(src, dst, port=port, protocol=protocol)
    if decision.allowed or any(b.allowed for b in decision.backends):
        raise AssertionError(
            f"expected {_describe(src, dst, port, protocol)} to be denied, but it is "
            f"allowed:\n{render_text(decision)}"
        )
    return decision
