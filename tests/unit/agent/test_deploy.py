"""deploy/ holds the rights and arguments the agent needs, and the sandbox runs it with the same.

Why this module exists: the agent's rights are written twice, in deploy/rbac.yaml (a real
cluster) and in the sandbox API server's bootstrap role ``kubefence:agent`` (``cluster up``).
Tested agents run with the sandbox's; users run with deploy/'s. If the two drift, a right the
tests never exercised (or one they need and users lack) goes unnoticed. Every kind the agent
watches must be readable under both, and the DaemonSet must start the agent as ``cluster up``
does where that applies on a real node.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from kubefence.agent._agent import ADMIN_RESOURCES, RESOURCES
from kubefence.agent._main import add_arguments, options_from_args
from kubefence.control.identity import AGENT_USER
from kubefence.control.rbac_bootstrap import BOOTSTRAP_OBJECTS

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
Right = tuple[str, str, str]  # (API group, resource, verb)


def _rights(rules: list[dict[str, Any]]) -> set[Right]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _deploy_objects(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def _deploy_rights() -> set[Right]:
    """The union of the agent ServiceAccount's ClusterRole and (Lease) Role."""
    roles = [o for o in _deploy_objects("rbac.yaml") if o["kind"] in ("ClusterRole", "Role")]
    assert {o["kind"] for o in roles} == {"ClusterRole", "Role"}
    return set().union(*(_rights(o["rules"]) for o in roles))


def test_the_sandbox_agent_role_grants_exactly_what_deploy_grants() -> None:
    bootstrap = next(
        o
        for o in BOOTSTRAP_OBJECTS
        if o["kind"] == "ClusterRole" and o["metadata"]["name"] == AGENT_USER
    )
    assert _rights(bootstrap["rules"]) == _deploy_rights()


def test_every_kind_the_agent_watches_is_readable_and_nothing_else_is() -> None:
    rights = _deploy_rights()
    watched = {(r.group, r.plural) for r in (*RESOURCES.values(), *ADMIN_RESOURCES.values())}
    assert ("", "nodes") in watched
    for group, plural in watched:
        for verb in ("get", "list", "watch"):
            assert (group, plural, verb) in rights, (group, plural, verb)
    read = {(g, r) for g, r, v in rights if v in ("get", "list", "watch")}
    assert read - watched == {("coordination.k8s.io", "leases")}  # its own Lease: get only
    writes = {(g, r, v) for g, r, v in rights if v not in ("get", "list", "watch")}
    assert writes == {
        ("", "events", "create"),
        ("", "events", "patch"),
        ("coordination.k8s.io", "leases", "create"),
        ("coordination.k8s.io", "leases", "update"),
    }


def test_the_daemonset_starts_the_agent_with_arguments_it_accepts_and_the_flow_log() -> None:
    (daemonset,) = _deploy_objects("daemonset.yaml")
    (container,) = daemonset["spec"]["template"]["spec"]["containers"]
    env = {e["name"] for e in container["env"]}
    args = [a.replace("$(NODE_NAME)", "node-7") for a in container["args"]]
    assert "NODE_NAME" in env
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = options_from_args(parser.parse_args(args))
    assert options.node == "node-7"
    assert options.flow_log  # as `cluster up` starts its agents
    assert not options.fail_open
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert options.metrics_port == ports["metrics"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == options.metrics_port
    assert container["securityContext"]["capabilities"]["add"] == ["NET_ADMIN"]
    assert daemonset["spec"]["template"]["spec"]["hostNetwork"] is True
