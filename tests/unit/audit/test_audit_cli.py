"""``kubefence audit`` end to end on examples/multi-tenant: table, JSON, SARIF and exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from kubefence.audit import RULES, Finding, Severity
from kubefence.cli._sarif import sarif_log
from kubefence.cli.main import main

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "multi-tenant"
SCHEMA = json.loads((ROOT / "tests" / "data" / "sarif-2.1.0.json").read_text())


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["audit", "-f", str(EXAMPLE), *argv])
    return code, capsys.readouterr().out


def validate_sarif(document: dict[str, Any]) -> None:
    jsonschema.validate(document, SCHEMA, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def test_sarif_output_is_valid_against_the_official_2_1_0_schema(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """-o sarif validates against the shipped schema; results point at file:line via ruleIndex."""
    monkeypatch.chdir(ROOT)
    code, out = run(capsys, "-o", "sarif")
    assert code == 0
    log = json.loads(out)
    validate_sarif(log)
    run_ = log["runs"][0]
    rules = run_["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [r.id for r in RULES]
    assert sorted({r["ruleId"] for r in run_["results"]}) == [f"KF{n:03}" for n in range(1, 13)]
    assert len(run_["results"]) == 17  # 3 errors, 9 warnings, 5 notes (as in -o json)
    assert sorted(r["level"] for r in run_["results"]).count("note") == 5
    for result in run_["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        physical = result["locations"][0]["physicalLocation"]
        uri = physical["artifactLocation"]["uri"]
        assert uri.startswith("examples/multi-tenant/")
        line = physical["region"]["startLine"]
        assert (ROOT / uri).read_text().splitlines()[line - 1].strip()  # a real source line


def test_sarif_finding_without_file_uses_a_logical_location_and_stays_valid() -> None:
    """A finding with no file (a namespace known only from references) is still valid SARIF."""
    finding = Finding("KF009", Severity.WARNING, "m", "f", namespace="ghost", object=None)
    log = sarif_log([finding], version="0.1.0", base=ROOT)
    validate_sarif(log)
    location = log["runs"][0]["results"][0]["locations"][0]
    assert "physicalLocation" not in location
    assert location["logicalLocations"][0]["fullyQualifiedName"] == "Namespace ghost"
    assert log["runs"][0]["results"][0]["level"] == "warning"


def test_sarif_schema_rejects_a_broken_log() -> None:
    """The shipped schema really constrains the output (a bad level is rejected)."""
    log = sarif_log([], version="0.1.0")
    validate_sarif(log)
    log["runs"][0]["results"] = [{"message": {"text": "x"}, "level": "fatal"}]
    with pytest.raises(jsonschema.ValidationError):
        validate_sarif(log)


def test_fail_on_error_exits_1_when_errors_exist_and_0_when_ignored(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--fail-on error fails on KF004/KF005/KF006; ignoring those ids makes it pass."""
    assert run(capsys, "--fail-on", "error", "--no-reachability")[0] == 1
    ignore = ["--ignore", "KF004", "--ignore", "kf005", "--ignore", "KF006"]
    assert run(capsys, "--fail-on", "error", "--no-reachability", *ignore)[0] == 0
    assert run(capsys, "--fail-on", "warning", "--no-reachability", *ignore)[0] == 1


def test_bad_options_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed --service-cidr or an unknown --ignore id is a usage error (exit 2)."""
    with pytest.raises(SystemExit) as exc:
        main(["audit", "-f", str(EXAMPLE), "--service-cidr", "198.19.0.0/99"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["audit", "-f", str(EXAMPLE), "--ignore", "KF999"])
    assert exc.value.code == 2
    capsys.readouterr()


def test_json_report_of_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    """-o json: the findings of every planted mistake, coverage, matrix and tenant paths."""
    code, out = run(capsys, "-o", "json", "--tenant-label", "tenant")
    assert code == 0
    doc = json.loads(out)
    ids = {f["id"] for f in doc["findings"]}
    assert ids == {f"KF{n:03}" for n in range(1, 13)}  # KF013 is rejected by the loader
    namespaces = {n["name"]: n for n in doc["namespaces"]}
    assert namespaces["shop"]["ingress_isolated"] == 2
    assert namespaces["analytics"]["egress_isolated"] == 0
    names = doc["matrix"]["namespaces"]
    rows = dict(zip(names, doc["matrix"]["rows"], strict=True))
    # S22: shop's egress to the database's ClusterIP never matches, so shop cannot reach it.
    assert rows["shop"][names.index("shop-data")] == "0"
    assert rows["shop"][names.index("kube-system")] == "1"  # DNS is allowed
    assert doc["tenant_label"] == "tenant"
    pairs = [(p["source"], p["destination"]) for p in doc["cross_tenant_paths"]]
    assert pairs == [
        ("analytics/worker", "billing/ledger"),  # the 10.0.0.0/8 ipBlock (KF007)
        ("analytics/worker", "shop/web"),
        ("shop-data/postgres", "analytics/worker"),
        ("shop-data/postgres", "billing/ledger"),
    ]
    opened = doc["cross_tenant_paths"][0]["opened_by"]
    assert opened[0] == "egress: not isolated"
    assert opened[1].startswith("ingress: billing/ledger spec.ingress[1] (")
    assert opened[1].endswith("30-billing-policies.yaml:27)")
    assert len(opened) == 2
    (first, *_) = doc["cross_tenant_namespace_pairs"]
    assert first == {
        "source": "analytics",
        "destination": "billing",
        "source_tenant": "initech",
        "destination_tenant": "globex",
        "pod_pairs": 1,
        "workload_pairs": 1,
        "ports": ["8443/TCP"],
        "workloads": [
            {
                "source": "analytics/worker",  # bare pods: the pod is its workload
                "destination": "billing/ledger",
                "pod_pairs": 1,
                "ports": ["8443/TCP"],
                "example": doc["cross_tenant_paths"][0],
            }
        ],
    }


def test_table_report_has_every_section(capsys: pytest.CaptureFixture[str]) -> None:
    """The table groups findings by file and prints namespaces, ranges, matrix and tenants."""
    code, out = run(capsys, "--tenant-label", "tenant")
    assert code == 0
    for heading in (
        "Findings: 3 error(s)",
        "examples/multi-tenant/20-shop-policies.yaml",
        "Namespaces (isolated pods / pods, per direction)",
        "External address ranges",
        "Namespace reachability on any port",
        "Cross-tenant paths (tenant label tenant)",
    ):
        assert heading in out


def test_policies_only_input_reports_findings_and_says_reachability_needs_pods(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without pods, pod-independent findings still report; reachability says why it is empty."""
    code = main(["audit", "-f", str(EXAMPLE / "30-billing-policies.yaml"), "--fail-on", "error"])
    out = capsys.readouterr().out
    assert code == 1  # KF005 needs no pods
    assert "KF005 egress-without-dns" in out
    assert "KF004" not in out  # ingress named ports are checked against pods only
    assert "Reachability: no pods in the input" in out


def test_json_without_reachability_leaves_out_the_matrix(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--no-reachability: coverage and findings only, no matrix and no reachable_from keys."""
    code, out = run(capsys, "-o", "json", "--no-reachability")
    doc = json.loads(out)
    assert code == 0
    assert "matrix" not in doc
    assert all("reachable_from" not in n for n in doc["namespaces"])
    assert doc["summary"] == {"error": 3, "warning": 9, "info": 5}


def test_kf013_duplicate_policy_across_files_is_a_finding_not_an_input_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two files defining billing/ledger: KF013 at the second, the first one is audited."""
    policy = (EXAMPLE / "30-billing-policies.yaml").read_text()
    (tmp_path / "a.yaml").write_text(policy)
    (tmp_path / "b.yaml").write_text("# copy\n" + policy.split("---\n", 1)[1])
    code = main(["audit", "-f", str(tmp_path), "-o", "json", "--no-reachability"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    (dup,) = [f for f in doc["findings"] if f["id"] == "KF013"]
    assert dup["file"].endswith("b.yaml")
    assert dup["line"] == 2
    assert f"{tmp_path / 'a.yaml'}:" in dup["message"]
    assert {f["id"] for f in doc["findings"]} == {"KF005", "KF008", "KF013"}
    assert main(["audit", "-f", str(tmp_path), "--ignore", "KF013", "--fail-on", "error"]) == 1
    capsys.readouterr()


def test_kf013_other_invalid_input_still_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only duplicate policies become findings; any other problem is still an input error."""
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: x}\nspec: {podSelector: {}, policyTypes: [Sideways]}\n"
    )
    assert main(["audit", "-f", str(tmp_path)]) == 2
    assert "Sideways" in capsys.readouterr().err


def _readme_block(command: str) -> str:
    """The output pasted under ``$ command`` in examples/multi-tenant/README.md."""
    text = (EXAMPLE / "README.md").read_text()
    start = text.index(f"$ {command}\n") + len(command) + 3
    return text[start : text.index("```", start)]


@pytest.mark.parametrize(
    "command",
    [
        "kubefence audit -f examples/multi-tenant --tenant-label tenant",
        "kubefence isolate -n analytics --egress --allow-dns --allow-from-namespace monitoring",
        "kubefence isolate -n analytics billing --egress --allow-dns --allow-from-namespace "
        "monitoring --check -f examples/multi-tenant",
    ],
)
def test_readme_walkthrough_shows_the_real_output(
    command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outputs pasted in the example's README are what the commands print today."""
    monkeypatch.chdir(ROOT)
    assert main(command.split()[1:]) == 0
    assert capsys.readouterr().out == _readme_block(command)


def test_ports_and_connections_are_spelled_as_explain_prints_them(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One spelling everywhere: ``80/TCP`` ports and ``a/x -> b/y on 80/TCP`` connections, in
    the table, the JSON document and the SARIF messages (was ``TCP/8443`` and ``a/x -> b/y:``)."""
    monkeypatch.chdir(ROOT)
    table = run(capsys, "--tenant-label", "tenant")[1]
    assert "    analytics/worker -> billing/ledger on 8443/TCP\n" in table
    assert "10.0.0.0/8 except 10.96.0.0/12  8443/TCP" in table
    doc = json.loads(run(capsys, "-o", "json", "--tenant-label", "tenant")[1])
    ports = {(p["source"], p["destination"]): p["ports"] for p in doc["cross_tenant_paths"]}
    assert ports[("analytics/worker", "billing/ledger")] == ["8443/TCP"]
    assert ports[("shop-data/postgres", "analytics/worker")] == ["all ports"]
    shop = next(n for n in doc["namespaces"] if n["name"] == "shop")
    assert [e["ports"] for e in shop["external_ingress"]] == ["http/TCP"]
    sarif = json.loads(run(capsys, "-o", "sarif")[1])
    messages = {r["ruleId"]: r["message"]["text"] for r in sarif["runs"][0]["results"]}
    assert "named port metrics/TCP is declared by none" in messages["KF004"]
    assert "allows 53/UDP to kube-dns" in messages["KF005"]
    assert "on 53/UDP and 53/TCP" in messages["KF005"]


def test_explain_bounds_the_examples_whose_rules_are_listed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--explain 1: rules for one example and a footer saying so; 'all' and the default list
    them for all four; a negative count is an input error."""
    code, out = run(capsys, "--tenant-label", "tenant", "--explain", "1")
    assert code == 0
    assert out.count("egress: not isolated") == 1
    assert "rules listed for 1 of 4 examples" in out
    for argv in (("--explain", "all"), ()):
        _, out = run(capsys, "--tenant-label", "tenant", *argv)
        assert out.count("egress: not isolated") == 4
        assert "rules listed for" not in out
    with pytest.raises(SystemExit):
        main(["audit", "-f", str(EXAMPLE), "--explain", "-3"])
