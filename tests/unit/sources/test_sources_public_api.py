"""The Python API users call: ``kubefence.load`` and ``kubefence.Cluster.from_objects`` use the
loaders with the same validation, and raise ``kubefence.ValidationError`` with structured
problems."""

from __future__ import annotations

from pathlib import Path

import pytest

import kubefence

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_load_quickstart_example() -> None:
    """``kubefence.load`` reads the quick-start directory into a cluster."""
    cluster = kubefence.load(str(EXAMPLES / "quickstart"))
    assert [p.key for p in cluster.pods] == ["default/busybox", "test/client", "test/nginx"]
    assert [p.key for p in cluster.policies] == ["test/allow-policy"]


def test_from_objects_validates_like_files() -> None:
    """``Cluster.from_objects`` rejects invalid dicts with structured FieldErrors."""
    bad = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "p"},
        "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 0}]}]},
    }
    with pytest.raises(kubefence.ValidationError) as caught:
        kubefence.Cluster.from_objects([bad], namespace="team-a")
    [problem] = caught.value.problems
    assert isinstance(problem, kubefence.FieldError)
    assert (problem.file, problem.object, problem.path) == (
        "<objects>",
        "NetworkPolicy team-a/p",
        "spec.ingress[0].ports[0].port",
    )


def test_from_objects_default_namespace() -> None:
    """The ``namespace`` argument places objects that name none."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "a"},
        "spec": {"containers": [{"name": "a", "image": "x"}]},
    }
    cluster = kubefence.Cluster.from_objects([pod], namespace="team-a")
    assert [p.key for p in cluster.pods] == ["team-a/a"]
