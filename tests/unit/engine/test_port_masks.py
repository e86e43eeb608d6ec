"""``port_masks`` (every port class at once, as bits) == ``class_matrix`` per port class."""

from __future__ import annotations

import pytest
from benchmarks.generate import generate_cluster
from tests.scenarios.corpus import load_scenarios

from kubefence.api import Inventory, Protocol
from kubefence.engine import ReachabilityAnalysis, mask_bits, port_classes, port_masks
from kubefence.sources.objects import inventory_from_objects


def check(inventory: Inventory) -> None:
    classes = port_classes([inventory], protocols=(Protocol.TCP, Protocol.UDP, Protocol.SCTP))
    analysis = ReachabilityAnalysis(inventory)
    masks = port_masks(analysis, classes)
    bits = mask_bits(len(classes))
    assert masks.shape[:2] == (analysis.classes.count, analysis.classes.count)
    for k, c in enumerate(classes):
        got = (masks[:, :, k // bits] >> (k % bits)) & 1
        assert (got.astype(bool) == analysis.class_matrix(c.port, c.protocol)).all(), c


@pytest.mark.parametrize("seed", range(6))
def test_masks_equal_the_class_matrices_on_generated_clusters(seed: int) -> None:
    check(inventory_from_objects(generate_cluster(pods=60, namespaces=8, policies=40, seed=seed)))


@pytest.mark.parametrize("scenario", load_scenarios(), ids=lambda s: s.name)
def test_masks_equal_the_class_matrices_on_scenarios(scenario: object) -> None:
    check(scenario.inventory())  # type: ignore[attr-defined]


def test_more_than_64_port_classes_use_several_words() -> None:
    """70 single ports in policies: more than 64 TCP classes, so two 64-bit words."""
    objects = generate_cluster(pods=20, namespaces=3, policies=6, seed=3)
    for i, obj in enumerate(o for o in objects if o["kind"] == "NetworkPolicy"):
        obj["spec"]["ingress"] = [{"ports": [{"port": 1000 + 3 * j + i} for j in range(70)]}]
        obj["spec"]["policyTypes"] = ["Ingress"]
    inventory = inventory_from_objects(objects)
    assert len(port_classes([inventory])) > 64
    check(inventory)
