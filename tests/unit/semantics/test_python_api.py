"""The Python API users put in their own CI: ``Cluster.can_reach``/``explain`` and
``kubefence.testing.assert_reachable``/``assert_isolated``.

Why this module exists: a failing assertion must carry the explanation (policy, rule, missing
label), and the cluster's settings must reach every question.
"""

from __future__ import annotations

import pytest
from tests.builders import namespace, pod, policy

import kubefence
from kubefence.semantics import Reason, Settings
from kubefence.testing import assert_isolated, assert_reachable

OBJECTS = [
    namespace("staging", env="staging"),
    pod("staging/nginx", app="nginx"),
    pod("default/busybox", app="busybox"),
    pod("test/nginx", app="nginx", ports=({"containerPort": 80, "name": "http"},)),
    policy(
        "test/allow-different-namespace-policy",
        "{podSelector: {matchLabels: {app: nginx}}, ingress: [{from: [{namespaceSelector: "
        "{matchLabels: {env: staging}}, podSelector: {matchLabels: {app: nginx}}}]}]}",
    ),
]


def test_can_reach_and_explain_answer_from_the_loaded_cluster() -> None:
    """``can_reach`` is the verdict of ``explain``; protocol and named ports are accepted."""
    cluster = kubefence.Cluster.from_objects(OBJECTS)
    assert cluster.can_reach("staging/nginx", "test/nginx", port=80)
    assert cluster.can_reach("staging/nginx", "test/nginx", port="http", protocol="tcp")
    assert not cluster.can_reach("default/busybox", "test/nginx", port=80)
    decision = cluster.explain("default/busybox", "test/nginx", port=80)
    assert decision.reason is Reason.POLICIES
    assert decision.ingress is not None
    assert [p.name for p in decision.ingress.isolating] == ["allow-different-namespace-policy"]


def test_cluster_settings_reach_every_question() -> None:
    """A cluster built with ``self_traffic_allowed=False`` lets policies decide self traffic."""
    strict = kubefence.Cluster.from_objects(OBJECTS, settings=Settings(self_traffic_allowed=False))
    assert kubefence.Cluster.from_objects(OBJECTS).can_reach("test/nginx", "test/nginx", port=80)
    assert not strict.can_reach("test/nginx", "test/nginx", port=80)  # test has no env=staging
    assert strict.explain("test/nginx", "test/nginx", port=80).reason is Reason.POLICIES


def test_assert_reachable_passes_or_fails_with_the_explanation() -> None:
    """``assert_reachable`` returns the decision when allowed, and otherwise raises an
    AssertionError whose message is the explanation."""
    cluster = kubefence.Cluster.from_objects(OBJECTS)
    assert assert_reachable(cluster, "staging/nginx", "test/nginx", port=80).allowed
    with pytest.raises(AssertionError) as caught:
        assert_reachable(cluster, "default/busybox", "test/nginx", port=80)
    message = str(caught.value)
    assert message.startswith("expected default/busybox -> test/nginx on 80/TCP to be allowed")
    assert "DENIED: default/busybox -> test/nginx on 80/TCP" in message
    assert "needs namespace label env=staging; namespace default has none" in message


def test_assert_isolated_passes_or_fails_with_the_explanation() -> None:
    """``assert_isolated`` returns the decision when denied, and otherwise names the rule that
    admitted the connection."""
    cluster = kubefence.Cluster.from_objects(OBJECTS)
    assert not assert_isolated(cluster, "default/busybox", "test/nginx", port=80).allowed
    with pytest.raises(AssertionError) as caught:
        assert_isolated(cluster, "staging/nginx", "test/nginx", port=80, protocol="TCP")
    message = str(caught.value)
    assert "to be denied, but it is allowed" in message
    assert "test/allow-different-namespace-policy rule 0" in message


def test_assert_isolated_fails_when_any_service_backend_accepts() -> None:
    """A Service with one open backend is not isolated even though it is not fully allowed."""
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }
    cluster = kubefence.Cluster.from_objects(
        [
            service,
            pod("ns/client"),
            pod("ns/open", app="web", open="yes"),
            pod("ns/closed", app="web"),
            policy(
                "ns/p", "{podSelector: {matchExpressions: [{key: open, operator: DoesNotExist}]}}"
            ),
        ]
    )
    assert not cluster.can_reach("ns/client", "svc:ns/web", port=80)
    with pytest.raises(AssertionError, match="ALLOWED: ns/client -> ns/open"):
        assert_isolated(cluster, "ns/client", "svc:ns/web", port=80)
