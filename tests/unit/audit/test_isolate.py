"""``kubefence isolate``: generated policies validate, and isolate exactly as promised."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kubefence.api import Inventory
from kubefence.audit import isolation_policies, lint
from kubefence.cli.main import main
from kubefence.semantics import decide
from kubefence.sources.objects import inventory_from_objects

ROOT = Path(__file__).resolve().parents[3]

CLUSTER: list[dict[str, Any]] = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    for name in ("team-a", "team-b", "ingress", "kube-system")
] + [
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "i", "ports": ports}]},
    }
    for namespace, name, labels, ports in (
        ("team-a", "web", {"app": "web"}, [{"containerPort": 80}]),
        ("team-a", "db", {"app": "db"}, [{"containerPort": 5432}]),
        ("team-b", "client", {"app": "client"}, []),
        ("ingress", "nginx", {"app": "nginx"}, []),
        (
            "kube-system",
            "coredns",
            {"k8s-app": "kube-dns"},
            [{"containerPort": 53, "protocol": "UDP", "name": "dns"}],
        ),
    )
]


def with_isolation(**options: Any) -> Inventory:
    return inventory_from_objects([*CLUSTER, *isolation_policies(["team-a"], **options)])


def test_generated_policies_pass_validation_with_expected_names() -> None:
    """Every generated object is accepted by the loader (the `kubefence validate` rules)."""
    objects = isolation_policies(
        ["team-a", "team-b"], allow_dns=True, egress=True, allow_from=["ingress"]
    )
    inventory = inventory_from_objects(objects)
    assert [p.key for p in inventory.policies] == [
        f"{ns}/kubefence-{name}"
        for ns in ("team-a", "team-b")
        for name in ("allow-dns", "allow-from-ingress", "allow-same-namespace", "default-deny")
    ]


def test_s03_isolation_denies_other_namespaces_and_allows_within() -> None:
    """After isolating team-a: team-b -> team-a denied, team-a -> team-a allowed (any port)."""
    before = inventory_from_objects(CLUSTER)
    after = with_isolation()
    assert decide(before, "team-b/client", "team-a/web", port=80).allowed
    assert not decide(after, "team-b/client", "team-a/web", port=80).allowed
    assert decide(after, "team-a/web", "team-a/db", port=5432).allowed
    assert decide(after, "team-a/db", "team-a/web", port=9999).allowed
    assert decide(after, "team-a/web", "team-b/client", port=80).allowed  # egress left open


def test_s12_allow_from_namespace_admits_that_namespace_only() -> None:
    """--allow-from-namespace ingress admits its pods; other namespaces stay denied."""
    after = with_isolation(allow_from=["ingress"])
    assert decide(after, "ingress/nginx", "team-a/web", port=80).allowed
    assert not decide(after, "team-b/client", "team-a/web", port=80).allowed


def test_egress_isolation_with_dns_allows_dns_and_nothing_else_outside() -> None:
    """--egress --allow-dns: UDP 53 to kube-dns and NodeLocal DNS allowed, other egress denied."""
    after = with_isolation(egress=True, allow_dns=True)
    assert decide(after, "team-a/web", "kube-system/coredns", port=53, protocol="UDP").allowed
    assert decide(after, "team-a/web", "169.254.20.10", port=53, protocol="UDP").allowed
    assert not decide(after, "team-a/web", "team-b/client", port=80).allowed
    assert not decide(after, "team-a/web", "8.8.8.8", port=53, protocol="UDP").allowed
    assert decide(after, "team-a/web", "team-a/db", port=5432).allowed
    without_dns = with_isolation(egress=True)
    assert not decide(
        without_dns, "team-a/web", "kube-system/coredns", port=53, protocol="UDP"
    ).allowed


def test_isolated_namespace_has_no_isolation_findings() -> None:
    """The generated set silences KF005, KF009 and KF010 for the isolated namespace."""
    found = {(f.rule, f.namespace) for f in lint(with_isolation(egress=True, allow_dns=True))}
    assert not {r for r, n in found if n == "team-a"} & {"KF005", "KF009", "KF010"}
    assert ("KF009", "team-b") in found
    dns_less = {(f.rule, f.namespace) for f in lint(with_isolation(egress=True))}
    assert ("KF005", "team-a") in dns_less


def test_cli_prints_yaml_that_loads_and_validates(capsys: pytest.CaptureFixture[str]) -> None:
    """The printed multi-document YAML parses and validates to the same policies."""
    code = main(["isolate", "-n", "team-a", "--egress", "--allow-dns"])
    assert code == 0
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["metadata"]["name"] for d in documents] == [
        "kubefence-default-deny",
        "kubefence-allow-same-namespace",
        "kubefence-allow-dns",
    ]
    policies = inventory_from_objects(documents).policies
    assert sorted(p.key for p in policies) == [
        "team-a/kubefence-allow-dns",
        "team-a/kubefence-allow-same-namespace",
        "team-a/kubefence-default-deny",
    ]
    assert all(
        d["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "kubefence"} for d in documents
    )


def test_cli_check_shows_before_and_after(capsys: pytest.CaptureFixture[str]) -> None:
    """--check -f prints coverage before -> after and the reachability lost."""
    example = str(ROOT / "examples" / "multi-tenant")
    assert (
        main(["isolate", "-n", "analytics", "--egress", "--allow-dns", "--check", "-f", example])
        == 0
    )
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.strip().startswith("analytics*"))
    assert "0/1 -> 1/1" in row
    assert "-shop-data" in row


def test_cli_bad_namespace_or_missing_files_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """An invalid namespace name, or --check without -f, is invalid input (exit 2)."""
    assert main(["isolate", "-n", "Not_A_Label"]) == 2
    assert main(["isolate", "-n", "a", "--check"]) == 2
    assert "--check needs" in capsys.readouterr().err
