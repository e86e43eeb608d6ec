"""How ``decide`` reads its inputs (endpoints, ports, protocols), caches its index, and picks
the nearest miss.

Why this module exists: the S-rule tests pin meaning; these pin the contract around it — every
endpoint form, every bad input as an ``InputError`` with a useful message (never a traceback),
the per-inventory cache that keeps many questions cheap, and which rule an explanation shows.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from tests.builders import inventory, pod, policy

from kubefence.api import Inventory
from kubefence.errors import InputError
from kubefence.semantics import EndpointKind, Reason, Settings, decide, index_for, parse_port
from kubefence.semantics._index import _CACHE
from kubefence.sources.files import load_paths

SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: ns}
spec:
  clusterIP: 10.96.0.10
  selector: {app: web}
  ports: [{port: 80}]
"""


def _cluster() -> Inventory:
    return inventory(
        SERVICE,
        pod("ns/web", ip="198.18.0.2", app="web"),
        pod("ns/v6", ips=("198.18.0.3", "fd00::3")),
        pod("kube-system/proxy", ip="192.0.2.1", host_network=True, node="n1"),
    )


@pytest.mark.parametrize(
    ("text", "kind", "name"),
    [
        ("ns/web", EndpointKind.POD, "ns/web"),
        ("198.18.0.2", EndpointKind.POD, "ns/web"),
        ("[fd00::3]", EndpointKind.POD, "ns/v6"),
        ("10.96.0.10", EndpointKind.SERVICE, "ns/web"),
        ("svc:ns/web", EndpointKind.SERVICE, "ns/web"),
        ("192.0.2.1", EndpointKind.NODE, "node:n1"),
        ("node:n7", EndpointKind.NODE, "node:n7"),
        ("kube-system/proxy", EndpointKind.HOST_NETWORK_POD, "kube-system/proxy"),
        ("203.0.113.8", EndpointKind.EXTERNAL, "203.0.113.8"),
    ],
)
def test_every_endpoint_form_resolves_to_its_kind(text: str, kind: EndpointKind, name: str) -> None:
    """Pods by name or address, Services by ClusterIP or ``svc:``, nodes by ``node:`` or a
    hostNetwork pod's address, anything else external."""
    decision = decide(_cluster(), "ns/web", text, port=80)
    assert (decision.destination.kind, decision.destination.name) == (kind, name)


@pytest.mark.parametrize(
    ("src", "dst", "port", "protocol", "message"),
    [
        ("ns/nope", "ns/web", 80, "TCP", "unknown pod 'ns/nope'; pods in namespace ns: ns/v6"),
        ("other/x", "ns/web", 80, "TCP", "namespace 'other' has no pods"),
        ("justaword", "ns/web", 80, "TCP", "expected NAMESPACE/POD"),
        ("a/b/c", "ns/web", 80, "TCP", "expected NAMESPACE/POD"),
        ("node:", "ns/web", 80, "TCP", "empty node name"),
        ("ns/web", "svc:ns/missing", 80, "TCP", "unknown service 'ns/missing'"),
        ("svc:ns/web", "ns/web", 80, "TCP", "a Service cannot open connections"),
        ("fd00::3", "198.18.0.2", 80, "TCP", "different IP families"),
        ("ns/web", "ns/v6", 0, "TCP", "out of range"),
        ("ns/web", "ns/v6", "70000", "TCP", "out of range"),
        ("ns/web", "ns/v6", " ", "TCP", "empty port"),
        ("ns/web", "ns/v6", 80, "GRE", "unknown protocol 'GRE'"),
    ],
)
def test_bad_input_is_an_input_error_that_says_what_was_expected(
    src: str, dst: str, port: int | str, protocol: str, message: str
) -> None:
    """Unknown pods list their namespace's pods; malformed endpoints, ports and protocols say
    what would be valid (the CLI turns these into exit code 2)."""
    with pytest.raises(InputError) as caught:
        decide(_cluster(), src, dst, port=port, protocol=protocol)
    assert message in str(caught.value)


def test_digit_strings_are_port_numbers_and_other_strings_are_names() -> None:
    """``"80"`` from a command line is the number 80; ``"http"`` stays a name."""
    assert parse_port("80") == 80
    assert parse_port(" http ") == "http"
    assert decide(_cluster(), "ns/v6", "ns/web", port="80").port == 80


def test_the_index_is_built_once_per_inventory_and_dropped_with_it() -> None:
    """Repeated questions reuse one compiled index; it is released with its inventory."""
    inv = _cluster()
    assert index_for(inv) is index_for(inv)
    assert index_for(_cluster()) is not index_for(inv)
    gc.collect()
    before = len(_CACHE)
    for _ in range(20):
        decide(_cluster(), "ns/web", "ns/v6", port=80)
    gc.collect()
    assert len(_CACHE) <= before


def test_the_nearest_miss_prefers_a_matching_peer_then_a_matching_port() -> None:
    """Of three rules — one missing both, one matching only the port, one matching only the
    peer — the explanation shows the one whose peer matched."""
    inv = inventory(
        pod("ns/server", app="server"),
        pod("ns/client", role="client"),
        policy(
            "ns/p",
            """
            podSelector: {matchLabels: {app: server}}
            ingress:
            - from: [{podSelector: {matchLabels: {role: other}}}]
              ports: [{port: 443}]
            - from: [{podSelector: {matchLabels: {role: other}}}]
              ports: [{port: 80}]
            - from: [{podSelector: {matchLabels: {role: client}}}]
              ports: [{port: 443}]
            """,
        ),
    )
    decision = decide(inv, "ns/client", "ns/server", port=80)
    assert decision.ingress is not None
    miss = decision.ingress.misses[0]
    assert [(r.rule, r.peer_matched, r.port_matched) for r in miss.rules] == [
        (0, False, False),
        (1, False, True),
        (2, True, False),
    ]
    assert miss.nearest is not None
    assert miss.nearest.rule == 2


def test_the_rule_line_points_into_the_manifest(tmp_path: Path) -> None:
    """Admissions and misses carry the file and the line of ``spec.ingress[i]``."""
    manifest = tmp_path / "policy.yaml"
    manifest.write_text(
        "apiVersion: v1\n"
        "kind: Pod\n"
        "metadata: {name: a, namespace: ns, labels: {app: a}}\n"
        "spec: {containers: [{name: c, image: i}]}\n"
        "---\n"
        "apiVersion: networking.k8s.io/v1\n"
        "kind: NetworkPolicy\n"
        "metadata: {name: p, namespace: ns}\n"
        "spec:\n"
        "  podSelector: {}\n"
        "  ingress:\n"
        "  - ports: [{port: 443}]\n"
        "  - from: [{podSelector: {matchLabels: {app: a}}}]\n",
        encoding="utf-8",
    )
    inv = load_paths([str(manifest)])
    allowed = decide(inv, "ns/a", "ns/a", port=80, settings=Settings(self_traffic_allowed=False))
    assert allowed.ingress is not None
    admission = allowed.ingress.admitted_by[0]
    assert (admission.policy.file, admission.policy.line) == (str(manifest), 6)
    assert (admission.rule, admission.line) == (1, 13)
    denied = decide(inv, "203.0.113.1", "ns/a", port=80)
    assert denied.ingress is not None
    assert [r.line for r in denied.ingress.misses[0].rules] == [12, 13]


def test_a_service_target_port_name_missing_on_a_backend_is_unresolved_there() -> None:
    """A named targetPort that a backend does not declare makes that backend UNRESOLVED_PORT."""
    inv = inventory(
        """
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: ns}
        spec:
          selector: {app: web}
          ports: [{port: 80, targetPort: http}]
        """,
        pod("ns/a", app="web", ports=({"containerPort": 8080, "name": "http"},)),
        pod("ns/b", app="web"),
        pod("ns/client"),
    )
    decision = decide(inv, "ns/client", "svc:ns/web", port=80)
    assert [(b.destination.name, b.reason, b.port) for b in decision.backends] == [
        ("ns/a", Reason.POLICIES, 8080),
        ("ns/b", Reason.UNRESOLVED_PORT, None),
    ]
    assert not decision.allowed
