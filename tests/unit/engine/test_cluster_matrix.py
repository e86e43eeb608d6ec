"""``kubefence.Cluster.matrix``: the engine through the public Python API.

Why this module exists: users call ``Cluster.matrix`` from their own scripts; it must validate
port and protocol like the CLI and honour the cluster's settings.
"""

from __future__ import annotations

import pytest

import kubefence
from kubefence.errors import InputError
from kubefence.semantics import Settings

OBJECTS = [
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "x"},
     "spec": {"containers": [{"name": "c", "image": "i"}]}},
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b", "namespace": "x"},
     "spec": {"containers": [{"name": "c", "image": "i"}]}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
     "metadata": {"name": "deny", "namespace": "x"}, "spec": {"podSelector": {}}},
]  # fmt: skip


def test_cluster_matrix_returns_design_json() -> None:
    """``Cluster.matrix(port="80")`` gives the JSON shape with the port string as given."""
    cluster = kubefence.Cluster.from_objects(OBJECTS)
    assert cluster.matrix(port="80", protocol="tcp").to_json() == {
        "port": "80",
        "protocol": "TCP",
        "endpoints": ["x/a", "x/b"],
        "rows": ["10", "01"],
    }


def test_s07_cluster_matrix_uses_the_cluster_settings() -> None:
    """A cluster built with ``self_traffic_allowed=False`` gets a policy-driven diagonal."""
    cluster = kubefence.Cluster.from_objects(OBJECTS, settings=Settings(self_traffic_allowed=False))
    assert cluster.matrix(port=80).rows() == ["00", "00"]


def test_cluster_matrix_rejects_bad_protocol() -> None:
    """An unknown protocol is an InputError naming the choices."""
    cluster = kubefence.Cluster.from_objects(OBJECTS)
    with pytest.raises(InputError, match="TCP, UDP or SCTP"):
        cluster.matrix(port=80, protocol="ICMP")
