"""``kubefence explain``: the text names policies, rules and file:line; JSON is complete;
``--expect`` turns a verdict into an exit code; bad input exits 2 with a message.

Why this module exists: ``explain`` is what users read when a packet is dropped and what CI
scripts call with ``--expect``; its output and exit codes are a contract.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.builders import inventory, pod, policy

from kubefence.cli._render_decision import render_text
from kubefence.cli.main import main
from kubefence.semantics import decide

WALKTHROUGH = """\
apiVersion: v1
kind: Namespace
metadata: {name: test}
---
apiVersion: v1
kind: Namespace
metadata: {name: staging, labels: {env: staging}}
---
apiVersion: v1
kind: Pod
metadata: {name: busybox, namespace: default, labels: {app: busybox}}
spec: {containers: [{name: c, image: busybox}]}
status: {podIP: 198.18.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: nginx, namespace: staging, labels: {app: nginx}}
spec: {containers: [{name: c, image: nginx}]}
status: {podIP: 198.18.2.2}
---
apiVersion: v1
kind: Pod
metadata: {name: nginx, namespace: test, labels: {app: nginx}}
spec: {containers: [{name: c, image: nginx, ports: [{containerPort: 80, name: http}]}]}
status: {podIP: 198.18.1.2}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all-policy, namespace: test}
spec:
  podSelector:
    matchLabels: {app: nginx}
  ingress: []
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-different-namespace-policy, namespace: test}
spec:
  podSelector:
    matchLabels: {app: nginx}
  ingress:
  - from:
    - namespaceSelector:
        matchLabels: {env: staging}
      podSelector:
        matchLabels: {app: nginx}
    ports:
    - port: 80
"""


def _line(needle: str) -> int:
    """1-based line of the first line of WALKTHROUGH containing ``needle``."""
    return next(i for i, line in enumerate(WALKTHROUGH.splitlines(), 1) if needle in line)


DENY_ALL_LINE = _line("name: deny-all-policy") - 2  # the document starts at apiVersion
RULE_0_LINE = _line("  - from:")


@pytest.fixture
def manifest(tmp_path: Path) -> str:
    path = tmp_path / "walkthrough.yaml"
    path.write_text(WALKTHROUGH, encoding="utf-8")
    return str(path)


def _explain(
    capsys: pytest.CaptureFixture[str], manifest: str, *extra: str
) -> tuple[int, str, str]:
    code = main(["explain", "-f", manifest, *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_denied_text_names_each_policy_rule_line_and_missing_label(
    capsys: pytest.CaptureFixture[str], manifest: str
) -> None:
    """A denial lists the isolating policies with file:line, the nearest rule with its line,
    and the namespace and pod labels the source lacks."""
    code, out, _ = _explain(
        capsys, manifest, "--from", "default/busybox", "--to", "test/nginx", "--port", "80"
    )
    assert code == 0
    assert out.startswith("DENIED: default/busybox -> test/nginx on 80/TCP")
    assert (
        f"test/deny-all-policy ({manifest}:{DENY_ALL_LINE}): no ingress rules, so it allows nothing"
        in out
    )
    assert f"rule 0 ({manifest}:{RULE_0_LINE}) allows the port but no peer matches:" in out
    assert (
        "peer 0 needs namespace label env=staging; namespace default has none; "
        "and needs pod label app=nginx; pod default/busybox has app=busybox" in out
    )


def test_allowed_text_names_the_admitting_rule(
    capsys: pytest.CaptureFixture[str], manifest: str
) -> None:
    """An allowed connection names the policy, rule, peer and port entry that admitted it."""
    code, out, _ = _explain(
        capsys, manifest, "--from", "staging/nginx", "--to", "test/nginx", "--port", "http"
    )
    assert code == 0
    assert out.startswith("ALLOWED: staging/nginx -> test/nginx on http/TCP (= 80)")
    where = f"({manifest}:{RULE_0_LINE})"
    assert f"test/allow-different-namespace-policy rule 0 {where}: peer 0, port entry 0" in out


def test_port_miss_says_which_ports_the_rule_lists(
    capsys: pytest.CaptureFixture[str], manifest: str
) -> None:
    """When the peer matches but the port does not, the rule's port entries are listed."""
    _, out, _ = _explain(
        capsys, manifest, "--from", "staging/nginx", "--to", "test/nginx", "--port", "443"
    )
    assert "matches the peer but only port 80/TCP" in out


def test_json_output_carries_the_structured_decision(
    capsys: pytest.CaptureFixture[str], manifest: str
) -> None:
    """``-o json`` holds the verdict, both sides, isolating policies and each nearest rule."""
    code, out, _ = _explain(
        capsys,
        manifest,
        "--from",
        "198.18.2.2",
        "--to",
        "test/nginx",
        "--port",
        "80",
        "-o",
        "json",
    )
    data = json.loads(out)
    assert code == 0
    assert (data["verdict"], data["reason"], data["source"]["name"]) == (
        "allow",
        "policies",
        "staging/nginx",
    )
    assert data["egress"]["isolated"] is False
    assert [p["name"] for p in data["ingress"]["isolating"]] == [
        "allow-different-namespace-policy",
        "deny-all-policy",
    ]
    assert data["ingress"]["admitted_by"][0]["rule"] == 0
    denied = json.loads(
        _explain(
            capsys,
            manifest,
            *("--from", "default/busybox", "--to", "test/nginx", "--port", "80", "-o", "json"),
        )[1]
    )
    misses = denied["ingress"]["misses"]
    assert [m["nearest_rule"] for m in misses] == [0, None]
    assert misses[0]["rules"][0]["peers"][0]["reason"] == "labels"


@pytest.mark.parametrize(
    ("src", "expect", "code"),
    [
        ("staging/nginx", "allow", 0),
        ("staging/nginx", "deny", 1),
        ("default/busybox", "deny", 0),
        ("default/busybox", "allow", 1),
    ],
)
def test_expect_exits_1_when_the_verdict_differs(
    capsys: pytest.CaptureFixture[str], manifest: str, src: str, expect: str, code: int
) -> None:
    """``--expect allow|deny`` makes explain a CI check: 0 on agreement, 1 otherwise."""
    got, _, err = _explain(
        capsys, manifest, "--from", src, "--to", "test/nginx", "--port", "80", "--expect", expect
    )
    assert got == code
    assert ("expected" in err) == (code == 1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "default/nobody", "--to", "test/nginx", "--port", "80"), "unknown pod"),
        (("--from", "default/busybox", "--to", "test/nginx", "--port", "0"), "out of range"),
        (
            ("--from", "default/busybox", "--to", "test/nginx", "--port", "80", "--protocol", "X"),
            "unknown protocol",
        ),
    ],
)
def test_bad_input_exits_2_with_a_message(
    capsys: pytest.CaptureFixture[str], manifest: str, args: tuple[str, ...], message: str
) -> None:
    """Unknown pods, ports and protocols are usage errors (exit 2), never tracebacks."""
    code, _, err = _explain(capsys, manifest, *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_unresolvable_port_name_is_explained(
    capsys: pytest.CaptureFixture[str], manifest: str
) -> None:
    """A port name the destination does not declare is a denial with its own reason."""
    code, out, _ = _explain(
        capsys, manifest, "--from", "default/busybox", "--to", "test/nginx", "--port", "grpc"
    )
    assert code == 0
    assert "DENIED" in out
    assert "declares no TCP port named 'grpc'" in out


def test_named_port_entries_say_why_they_do_not_resolve() -> None:
    """A named port entry is shown with its number at a pod destination, as undeclared at a pod
    that lacks it, and as never matching a destination that is not a pod (S21)."""
    inv = inventory(
        pod("ns/client", app="client"),
        pod("ns/api", ports=({"containerPort": 9000, "name": "api"},)),
        pod("ns/legacy", ports=({"containerPort": 9000},)),
        policy(
            "ns/p",
            "{podSelector: {matchLabels: {app: client}}, policyTypes: [Egress], egress: "
            "[{ports: [{port: api}]}]}",
        ),
    )
    to_api = render_text(decide(inv, "ns/client", "ns/api", port=9001))
    to_legacy = render_text(decide(inv, "ns/client", "ns/legacy", port=9000))
    to_address = render_text(decide(inv, "ns/client", "203.0.113.9", port=9000))
    assert "only port api/TCP (= 9000 at the destination)" in to_api
    assert "only port api/TCP (not declared by the destination)" in to_legacy
    assert "api/TCP (a name never matches a destination that is not a pod)" in to_address
