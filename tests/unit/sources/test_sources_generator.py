"""The benchmark generator (``benchmarks/generate.py``) makes valid, deterministic clusters of
the requested size, so load and engine benchmarks measure what they claim to."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest

from kubefence.sources.files import load_paths
from kubefence.sources.objects import inventory_from_objects

GENERATOR = Path(__file__).resolve().parents[3] / "benchmarks" / "generate.py"


@pytest.fixture(scope="module")
def generate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kubefence_bench_generate", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_generated_cluster_is_valid_and_sized(generate: ModuleType, seed: int) -> None:
    """Every seed yields a valid set with exactly the requested numbers of objects."""
    objects = generate.generate_cluster(pods=300, namespaces=20, policies=90, seed=seed)
    inventory = inventory_from_objects(objects)
    assert len(inventory.pods) == 300
    assert len(inventory.namespaces) == 20
    assert len(inventory.policies) == 90
    assert not any(ns.implicit for ns in inventory.namespaces)


def test_generator_is_deterministic_and_round_trips_through_yaml(
    generate: ModuleType, tmp_path: Path
) -> None:
    """The same seed gives the same objects, and the YAML writer's output loads identically."""
    first = generate.generate_cluster(pods=120, namespaces=10, policies=30, seed=7)
    assert first == generate.generate_cluster(pods=120, namespaces=10, policies=30, seed=7)
    assert first != generate.generate_cluster(pods=120, namespaces=10, policies=30, seed=8)
    path = generate.write_yaml(first, tmp_path / "cluster.yaml")
    from_file = load_paths([str(path)])
    from_objects = inventory_from_objects(first)
    assert [replace(p, origin=None) for p in from_file.pods] == [
        replace(p, origin=None) for p in from_objects.pods
    ]
    assert [replace(p, origin=None) for p in from_file.policies] == [
        replace(p, origin=None) for p in from_objects.policies
    ]


def test_generator_addresses_stay_in_benchmarking_ranges(generate: ModuleType) -> None:
    """Pod IPs and ipBlocks lie in 198.18.0.0/15 or fd00::/8, never in networks a real cluster
    (or the machine running the benchmark) may use."""
    import ipaddress

    allowed = (ipaddress.ip_network("198.18.0.0/15"), ipaddress.ip_network("fd00::/8"))
    inventory = inventory_from_objects(
        generate.generate_cluster(pods=600, namespaces=20, policies=200, seed=3)
    )
    networks = [ipaddress.ip_network(ip) for pod in inventory.pods for ip in pod.ips]
    for policy in inventory.policies:
        for rule in (*policy.ingress, *policy.egress):
            for peer in rule.peers:
                if peer.ip_block is not None:
                    networks.append(peer.ip_block.cidr)
                    networks.extend(peer.ip_block.except_)
    assert any(n.version == 4 and n.prefixlen < 32 for n in networks), "no ipBlock generated"
    for network in networks:
        assert any(network.subnet_of(a) for a in allowed if a.version == network.version), network
