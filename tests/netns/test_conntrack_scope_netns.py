"""Strict mode (S25) judges only the connections a policy change can affect (root).

After a change confined to one namespace's policies, ``apply`` asks the reference evaluator
about the tracked flows from or to that namespace's pods only, and still cuts the denied ones;
connections elsewhere are neither judged nor cut.
"""

from __future__ import annotations

import pytest
from tests.netns.conftest import SandboxMaker, inventory_of
from tests.netns.test_apply_netns import _connection, _delivered

import kubefence.dataplane.netns._sandbox as sandbox_module
from kubefence.api import Inventory, Protocol
from kubefence.semantics import DEFAULT_SETTINGS

pytestmark = pytest.mark.netns

PODS = "".join(
    f"""
---
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{containers: [{{name: main, image: busybox}}]}}
"""
    for namespace, name in (("a", "p1"), ("a", "p2"), ("b", "q1"), ("b", "q2"))
) + "".join(
    f"\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {n}}}\n" for n in ("a", "b")
)

DENY_A = """
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: a}
spec: {podSelector: {}, policyTypes: [Ingress]}
"""


def test_s01_s25_only_flows_of_the_changed_namespace_are_judged(
    make_sandbox: SandboxMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deny-all in namespace a: the a-to-a connection is judged and cut, the b-to-b one is
    not even judged and keeps working."""
    judged: list[tuple[str, str, int]] = []
    reference = sandbox_module.reference_verdict(DEFAULT_SETTINGS)

    def counting(_settings: object) -> sandbox_module.Verdict:
        def verdict(
            inventory: Inventory, src: str, dst: str, port: int, protocol: Protocol
        ) -> bool:
            judged.append((src, dst, port))
            return reference(inventory, src, dst, port, protocol)

        return verdict

    monkeypatch.setattr(sandbox_module, "reference_verdict", counting)
    sandbox = make_sandbox(inventory_of(PODS))
    addresses = {key: str(slot.ipv4) for key, slot in sandbox.state.pods.items()}
    with (
        _connection(sandbox, "a/p1", "a/p2", 9201) as inside_a,
        _connection(sandbox, "b/q1", "b/q2", 9202) as inside_b,
    ):
        assert _delivered(*inside_a, b"before")
        assert _delivered(*inside_b, b"before")
        report = sandbox.apply(inventory_of(PODS + DENY_A))
        assert any(f.dport == 9201 for f in report.cut)
        assert all(f.dport != 9202 for f in report.cut)
        assert (addresses["a/p1"], addresses["a/p2"], 9201) in judged
        assert all(port != 9202 for _, _, port in judged)
        assert not _delivered(*inside_a, b"after")
        assert _delivered(*inside_b, b"after")
