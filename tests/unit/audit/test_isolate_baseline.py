"""``kubefence isolate --tier baseline``: Baseline ClusterNetworkPolicies that validate, and that
the engine (and the reference evaluator) prove isolate tenants while keeping each namespace's
own traffic; ``isolate --check`` on tiered input."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import yaml

from kubefence.api import Inventory
from kubefence.audit import build_report, isolation_policies, lint
from kubefence.cli.main import main
from kubefence.semantics import decide
from kubefence.sources.objects import inventory_from_objects

TENANTS = ("red", "blue", "green")


def cluster(extra: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {"tenant": name} if name in TENANTS else {}},
        }
        for name in (*TENANTS, "ingress", "kube-system")
    ]
    for n, (namespace, app) in enumerate(
        [(t, app) for t in TENANTS for app in ("web", "db")]
        + [("ingress", "nginx"), ("kube-system", "coredns")]
    ):
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": app,
                    "namespace": namespace,
                    "labels": {"k8s-app": "kube-dns"} if app == "coredns" else {"app": app},
                },
                "spec": {"containers": [{"name": "c", "image": "i"}]},
                "status": {"podIP": f"198.18.{n // 2}.{10 + n}"},
            }
        )
    return objects + (extra or [])


def isolated(**options: Any) -> Inventory:
    made = isolation_policies(list(TENANTS), tier="Baseline", **options)
    return inventory_from_objects(cluster(made))


def reach(inventory: Inventory) -> dict[tuple[str, str], bool]:
    report = build_report(inventory)
    names = report.names
    return {(a, b): report.matrix[i][j] for i, a in enumerate(names) for j, b in enumerate(names)}


def test_generated_objects_validate_one_baseline_policy_per_namespace() -> None:
    made = isolation_policies(
        list(TENANTS), tier="Baseline", egress=True, allow_dns=True, allow_from=["ingress"]
    )
    inventory = inventory_from_objects(made)
    assert not inventory.policies
    assert [(p.name, p.tier.value, p.priority) for p in inventory.admin_policies] == [
        (f"kubefence-isolate-{t}", "Baseline", 1000) for t in sorted(TENANTS)
    ]
    red = next(p for p in inventory.admin_policies if p.name == "kubefence-isolate-red")
    assert [(r.name, r.action.value) for r in red.ingress] == [
        ("same-namespace", "Accept"),
        ("from-ingress", "Accept"),
        ("other-namespaces", "Deny"),
    ]
    assert [(r.name, r.action.value) for r in red.egress] == [
        ("same-namespace", "Accept"),
        ("dns", "Accept"),
        ("elsewhere", "Deny"),
    ]


def test_engine_proves_tenants_isolated_and_namespaces_whole() -> None:
    before, after = reach(inventory_from_objects(cluster())), reach(isolated())
    for a, b in itertools.permutations(TENANTS, 2):
        assert before[(a, b)]
        assert not after[(a, b)], f"{a} -> {b}"
    for t in TENANTS:
        assert after[(t, t)]  # web <-> db within each namespace
        assert after[(t, "kube-system")]  # egress is not isolated without --egress
        assert not after[("ingress", t)]
    assert after[("red", "ingress")]


def test_reference_agrees_pod_by_pod() -> None:
    inventory = isolated(egress=True, allow_dns=True, allow_from=["ingress"])
    pods = [f"{p.namespace}/{p.name}" for p in inventory.pods]
    for src, dst in itertools.permutations(pods, 2):
        s_ns, d_ns = src.split("/")[0], dst.split("/")[0]
        tcp = decide(inventory, src, dst, port=80).allowed
        dns = decide(inventory, src, dst, port=53, protocol="UDP").allowed
        if s_ns in TENANTS:
            assert tcp == (d_ns == s_ns), (src, dst)
            assert dns == (d_ns in (s_ns, "kube-system")), (src, dst)
        elif d_ns in TENANTS:
            assert tcp == (s_ns == "ingress"), (src, dst)


def test_tenant_network_policy_overrides_the_baseline() -> None:
    """Baseline: a tenant may open its own namespace with a NetworkPolicy (T01)."""
    opener = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "open", "namespace": "blue"},
        "spec": {"podSelector": {}, "ingress": [{}]},
    }
    made = isolation_policies(list(TENANTS), tier="Baseline")
    after = reach(inventory_from_objects(cluster([*made, opener])))
    assert after[("red", "blue")]
    assert not after[("blue", "red")]


def test_generated_policies_raise_no_tier_findings() -> None:
    inventory = isolated(egress=True, allow_dns=True, allow_from=["ingress"])
    found = {(f.rule, f.namespace) for f in lint(inventory)}
    assert ("KF009", "ingress") in found  # not isolated: still reported
    rules = {r for r, n in found if n in TENANTS or n is None}
    assert not rules & {"KF009", "KF010", "KF014", "KF015", "KF016", "KF017"}


def test_cli_tenant_label_isolates_every_tenant(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump_all(cluster()))
    assert main(["isolate", "--tier", "baseline", "--tenant-label", "tenant", "-f", str(path)]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["metadata"]["name"] for d in docs] == [
        f"kubefence-isolate-{t}" for t in sorted(TENANTS)
    ]
    assert {d["kind"] for d in docs} == {"ClusterNetworkPolicy"}
    assert main(["isolate", "--tier", "baseline"]) == 2
    assert main(["isolate", "-n", "red", "--tenant-label", "tenant"]) == 2


def test_cli_check_takes_tiered_input(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Input that already has a tiered policy is analysed (was refused), and the summary shows
    the cross-tenant reachability the Baseline policies remove."""
    admin = {
        "apiVersion": "policy.networking.k8s.io/v1alpha2",
        "kind": "ClusterNetworkPolicy",
        "metadata": {"name": "monitoring"},
        "spec": {
            "tier": "Admin",
            "priority": 1,
            "subject": {"namespaces": {"matchLabels": {"tenant": "green"}}},
            "ingress": [
                {"action": "Accept", "from": [{"namespaces": {"matchLabels": {"tenant": "red"}}}]}
            ],
        },
    }
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump_all(cluster([admin])))
    argv = ["isolate", "--tier", "baseline", "-n", *TENANTS, "--check", "-f", str(path)]
    assert main(argv) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "- (-blue, -green, -ingress, -kube-system)" in rows["red*"]
    assert "red (-blue, -ingress, -kube-system)" in rows["green*"]  # the Admin Accept stays
    assert main([*argv[:-2], "-f", str(path), "-f", str(path)]) == 0  # duplicates: same file
    capsys.readouterr()


def _cnp(name: str, tier: str, subject: str, **rules: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "tier": tier,
        "priority": 5,
        "subject": {"namespaces": {"matchLabels": {"tenant": subject}}},
    }
    spec.update(rules)
    return {
        "apiVersion": "policy.networking.k8s.io/v1alpha2",
        "kind": "ClusterNetworkPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


def test_check_columns_count_what_baseline_isolates(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """``isolate --tier baseline --check`` on input without policies: each tenant's two pods
    become isolated for ingress (the Baseline Deny), not "0/2 -> 0/2"; egress only with
    ``--egress``; namespaces it does not touch stay 0."""
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump_all(cluster()))
    argv = ["isolate", "--tier", "baseline", "-n", *TENANTS, "--check", "-f", str(path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "an Admin or Baseline policy with a Deny rule" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("  ")}
    for tenant in TENANTS:
        assert rows[f"{tenant}*"][1:7] == ["0/2", "->", "2/2", "0/2", "->", "0/2"]
    assert rows["ingress"][1:7] == ["0/1", "->", "0/1", "0/1", "->", "0/1"]
    assert main([*argv, "--egress"]) == 0
    rows = {
        line.split()[0]: line.split()
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("  ")
    }
    assert rows["red*"][1:7] == ["0/2", "->", "2/2", "0/2", "->", "2/2"]


def test_check_columns_show_what_admin_accept_opens(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """An Admin Accept rule selecting green's pods for ingress is reported as opening them
    (before and after: it is in the input), next to the isolation counts."""
    admin = _cnp(
        "monitoring",
        "Admin",
        "green",
        ingress=[{"action": "Accept", "from": [{"namespaces": {}}]}],
    )
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump_all(cluster([admin])))
    assert main(["isolate", "-n", "green", "--check", "-f", str(path)]) == 0
    rows = {
        line.split()[0]: line
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("  ")
    }
    assert "0/2 -> 2/2; admin opens 2 -> 2" in rows["green*"]  # NetworkPolicy isolation added
    assert "admin opens" not in rows["red"]


def test_tier_isolation_counts_deny_rules_not_subjects() -> None:
    """T03: a subject with only Accept or Pass rules is not isolated; a Deny rule in a
    direction isolates for that direction only; NetworkPolicy isolation still counts."""
    from kubefence.audit import tier_isolation

    anyone = [{"namespaces": {}}]
    objects = cluster(
        [
            _cnp("red-accept", "Baseline", "red", ingress=[{"action": "Accept", "from": anyone}]),
            _cnp("red-pass", "Admin", "red", egress=[{"action": "Pass", "to": anyone}]),
            _cnp("blue-deny-out", "Baseline", "blue", egress=[{"action": "Deny", "to": anyone}]),
            _cnp(
                "green-admin",
                "Admin",
                "green",
                ingress=[
                    {"action": "Accept", "from": anyone},
                    {"action": "Deny", "from": anyone},
                ],
            ),
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": "web-only", "namespace": "red"},
                "spec": {"podSelector": {"matchLabels": {"app": "web"}}},
            },
        ]
    )
    found = tier_isolation(inventory_from_objects(objects))
    red, blue, green = found["red"], found["blue"], found["green"]
    assert (red.ingress_isolated, red.egress_isolated, red.ingress_opened) == (1, 0, 0)
    assert (blue.ingress_isolated, blue.egress_isolated, blue.egress_opened) == (0, 2, 0)
    assert (green.ingress_isolated, green.ingress_opened, green.egress_opened) == (2, 2, 0)
    assert found["kube-system"].ingress_isolated == 0
