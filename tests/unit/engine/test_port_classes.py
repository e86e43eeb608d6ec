"""Port classes: one representative port answers exactly for every port of its class.

Why this module exists: ``matrix`` without ``--port`` and ``diff`` trust that a class's
representative stands for all its ports; if a split point were missed, a whole range of ports
would be reported wrongly. These tests pin the split points and check the claim on random
clusters against the engine at arbitrary ports.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from tests.property.strategies import inventories

from kubefence.api import Inventory, Protocol
from kubefence.engine import PortClass, ReachabilityAnalysis, port_classes
from kubefence.sources.objects import inventory_from_objects

# Ports at and next to the numbers the strategies use, where a missed split would show.
NEAR_SPLITS = tuple(
    sorted({p + d for p in (53, 80, 443, 8000, 8080, 9090, 17000) for d in (-1, 0, 1)})
)


def _find(classes: tuple[PortClass, ...], protocol: Protocol, port: int) -> PortClass:
    for c in classes:
        if c.protocol is protocol and not c.other and c.low <= port <= c.high:
            return c
    return next(c for c in classes if c.protocol is protocol and c.other)


def test_s20_s21_classes_split_at_ranges_and_named_port_numbers() -> None:
    """A range 8000-8080 and a named port resolving to 80 and 8443 give these classes."""
    inv = inventory_from_objects(
        [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "a", "namespace": "n"},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "i",
                            "ports": [
                                {"containerPort": 80, "name": "web"},
                                {"containerPort": 8443, "name": "tls"},
                            ],
                        }
                    ]
                },
            },
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "b", "namespace": "n"},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "i",
                            "ports": [{"containerPort": 8050, "name": "web"}],
                        }
                    ]
                },
            },
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": "p", "namespace": "n"},
                "spec": {
                    "podSelector": {},
                    "ingress": [
                        {"ports": [{"port": 8000, "endPort": 8080}, {"port": "web"}]},
                        {"ports": [{"protocol": "UDP", "port": 53}]},
                    ],
                },
            },
        ]
    )
    labels = [(c.protocol.value, c.label) for c in port_classes([inv])]
    assert labels == [
        ("TCP", "80"),
        ("TCP", "8000-8049"),
        ("TCP", "8050"),
        ("TCP", "8051-8080"),
        ("TCP", "other"),
        ("UDP", "53"),
        ("UDP", "other"),
    ]
    only_udp = port_classes([inv], protocols=[Protocol.UDP])
    assert [c.label for c in only_udp] == ["53", "other"]


def test_s09_no_policies_means_one_other_class() -> None:
    """Without port entries every TCP port answers alike: a single "other" class."""
    assert [c.label for c in port_classes([Inventory.of()])] == ["other"]


@given(
    inventories(max_pods=5, max_policies=3),
    st.one_of(st.integers(1, 65535), st.sampled_from(NEAR_SPLITS)),
    st.sampled_from((Protocol.TCP, Protocol.UDP)),
)
def test_representative_port_answers_for_every_port_of_its_class(
    inventory: Inventory, port: int, protocol: Protocol
) -> None:
    """The matrix at any port equals the matrix at its class's representative port."""
    classes = port_classes([inventory], protocols=[protocol])
    chosen = _find(classes, protocol, port)
    analysis = ReachabilityAnalysis(inventory)
    assert analysis.matrix(port, protocol).rows() == analysis.matrix(chosen.port, protocol).rows()
