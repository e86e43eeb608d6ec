"""``kubefence tutorial`` without root: the walk-through's data, predictions, output and options.

The real-packet run lives in ``tests/netns/test_tutorial_e2e.py``; here a fake observer stands in
for the sandbox so the runner's agreement check, exit codes and rendering are tested anywhere.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from pathlib import Path

import pytest

from kubefence.api import Inventory, Protocol, Rule
from kubefence.cli import _tutorial
from kubefence.cli._render_decision import render_text
from kubefence.cli._tutorial import (
    NOT_ENFORCED,
    STEPS,
    Check,
    Console,
    ManifestState,
    Observation,
    Step,
    examples_dir,
    kubectl_command,
    run_tutorial,
)
from kubefence.cli.main import main
from kubefence.errors import InputError
from kubefence.semantics import decide
from kubefence.sources.files import load_paths

EXAMPLES = examples_dir()


@functools.cache
def _state_after(label: str) -> Inventory:
    """The cluster state once every action up to and including step ``label`` ran."""
    state = ManifestState(EXAMPLES)
    for step in STEPS:
        for action in step.actions:
            state.run(action)
        if step.label == label:
            return state.inventory()
    raise AssertionError(f"no step {label}")


def _check(label: str, src: str, dst: str) -> tuple[Inventory, Check]:
    step = next(s for s in STEPS if s.label == label)
    check = next(c for c in step.checks if c.src == src and c.dst == dst)
    return _state_after(label), check


def _predict(inventory: Inventory, check: Check) -> bool:
    return decide(inventory, check.src, check.dst, port=check.port, protocol=check.protocol).allowed


class FakeObserver:
    """Observes what the reference evaluator predicts, except for ``flip`` connections."""

    description = "a fake data plane"

    def __init__(self, flip: frozenset[str] = frozenset()) -> None:
        self.flip = flip
        self.synced: list[Inventory] = []
        self.closed = False

    def sync(self, inventory: Inventory, *, files: Sequence[Path]) -> None:
        assert all(path.is_file() for path in files)
        self.synced.append(inventory)

    def observe(self, checks: Sequence[Check], inventory: Inventory) -> list[Observation]:
        results = []
        for check in checks:
            allowed = _predict(inventory, check) != (check.connection in self.flip)
            results.append(Observation(allowed, "fake probe", ("fake output",)))
        return results

    def close(self) -> None:
        self.closed = True


def _run(observer: FakeObserver | None, **kwargs: object) -> tuple[int, str]:
    out = io.StringIO()
    result = run_tutorial(
        EXAMPLES,
        console=Console(out, color=False),
        observer=observer,
        **kwargs,  # type: ignore[arg-type]
    )
    return result.exit_code, out.getvalue()


@pytest.mark.parametrize(
    ("step", "check"),
    [(s, c) for s in STEPS for c in s.checks],
    ids=[f"{s.label}:{c.connection}" for s in STEPS for c in s.checks],
)
def test_every_prediction_is_what_the_walkthrough_teaches(step: Step, check: Check) -> None:
    """The reference evaluator's verdict on each tutorial connection is the one the story tells."""
    assert _predict(_state_after(step.label), check) is check.teaches


def test_s01_s03_namespaces_alone_isolate_nothing() -> None:
    """Step 1: with no policy, busybox in default reaches nginx in test, nothing isolates it."""
    inventory, check = _check("1", "default/busybox", "test/nginx")
    decision = decide(inventory, check.src, check.dst, port=80)
    assert decision.allowed
    assert decision.ingress is not None
    assert not decision.ingress.isolated


def test_s08_deny_all_policy_admits_nobody_and_says_so() -> None:
    """Step 2: ``ingress: []`` denies even the own namespace; the explanation names the policy."""
    inventory, check = _check("2", "test/busybox", "test/nginx")
    decision = decide(inventory, check.src, check.dst, port=80)
    assert not decision.allowed
    text = render_text(decision)
    assert "test/deny-all-policy (" in text
    assert "deny-all-policy.yaml:2)" in text
    assert "no ingress rules, so it allows nothing" in text


def test_s11_pod_selector_alone_covers_only_the_policys_namespace() -> None:
    """Step 3: app=nginx in namespace default is denied, and the explanation says why."""
    inventory, check = _check("3", "default/client", "test/nginx")
    decision = decide(inventory, check.src, check.dst, port=80)
    assert not decision.allowed
    assert "selects pods of namespace test only" in render_text(decision)
    _, same_ns = _check("3", "test/client", "test/nginx")
    assert _predict(inventory, same_ns)


def test_s13_and_peer_versus_or_items_opens_exactly_two_connections() -> None:
    """Step 4a vs 4b: the OR spelling opens staging/busybox and test/client, nothing else."""
    and_state, or_state = _state_after("4a"), _state_after("4b")
    sources = ["staging/client", "staging/busybox", "test/client", "default/client"]
    opened = [
        src
        for src in sources
        if decide(or_state, src, "test/nginx", port=80).allowed
        and not decide(and_state, src, "test/nginx", port=80).allowed
    ]
    assert opened == ["staging/busybox", "test/client"]
    policies = [p for p in or_state.policies if p.namespace == "test"]
    assert [p.name for p in policies] == ["allow-different-namespace-or-policy"]
    assert len(policies[0].ingress[0].peers) == 2


def test_s03_s05_default_deny_blocks_both_directions_including_dns() -> None:
    """Step 5: test-policy pods get nothing in or out, DNS over UDP 53 included."""
    inventory = _state_after("5")
    dns = decide(inventory, "test-policy/busybox", "kube-system/kube-dns", port=53, protocol="UDP")
    assert not dns.allowed
    assert dns.egress is not None
    assert dns.egress.isolated
    assert not dns.egress.allowed
    other = decide(inventory, "default/busybox", "kube-system/kube-dns", port=53, protocol="UDP")
    assert other.allowed
    assert [p.key for p in inventory.policies] == ["test-policy/default-ingress-egress-deny"]


def test_examples_are_plain_kubernetes_manifests() -> None:
    """Every tutorial file loads on its own, and the whole directory loads at once (no two
    files define the same object), so ``kubefence validate -f examples/tutorial`` passes."""
    files = sorted(EXAMPLES.glob("*.yaml"))
    used = {a.file for s in STEPS for a in s.actions if not a.cluster_only}
    assert {f.name for f in files} == used
    for path in files:
        inventory = load_paths([str(path)])
        assert inventory.namespaces or inventory.pods or inventory.policies
    assert len(load_paths([str(EXAMPLES)]).policies) == 5


def test_manifest_state_follows_kubectl_apply_and_delete(tmp_path: Path) -> None:
    """A file that redefines every object of an earlier one replaces it (as ``kubectl apply``
    overwrites objects); a delete removes the file with the same objects; others stay."""
    policy = (EXAMPLES / "deny-all-policy.yaml").read_text()
    (tmp_path / "a.yaml").write_text(policy)
    (tmp_path / "b.yaml").write_text(policy.replace("ingress: []", "ingress: [{}]"))
    (tmp_path / "ns.yaml").write_text((EXAMPLES / "test-namespace.yaml").read_text())
    state = ManifestState(tmp_path)
    for file in ("ns.yaml", "a.yaml", "b.yaml"):
        state.run(_tutorial.Action(_tutorial.Verb.APPLY, file))
    assert state.files == ["ns.yaml", "b.yaml"]
    assert state.inventory().policies[0].ingress == (Rule(),)
    state.run(_tutorial.Action(_tutorial.Verb.DELETE, "a.yaml"))
    assert state.files == ["ns.yaml"]


def test_manifest_state_rejects_an_unreadable_manifest(tmp_path: Path) -> None:
    """A tutorial manifest that is not valid YAML is an input error naming the file, not a
    traceback."""
    (tmp_path / "bad.yaml").write_text("kind: [unclosed\n")
    state = ManifestState(tmp_path)
    with pytest.raises(InputError, match=r"bad\.yaml: cannot read the tutorial manifest"):
        state.run(_tutorial.Action(_tutorial.Verb.APPLY, "bad.yaml"))


def test_kubectl_command_goes_through_the_service_name() -> None:
    """The shown kubectl command curls the Service (nginx.test), as a cluster user would."""
    inventory, check = _check("1", "default/busybox", "test/nginx")
    assert kubectl_command(check, inventory) == (
        "kubectl exec -n default busybox -- curl -sS -m 1 http://nginx.test"
    )


def test_prediction_only_is_labelled_not_enforced_and_exits_0() -> None:
    """Without a data plane the output says NOT ENFORCED with the reason, and exit is 0."""
    code, text = _run(None, not_enforced_reason="needs root")
    assert code == 0
    assert text.count(f"{NOT_ENFORCED} (needs root)") == 2
    table = text.split("Summary\n", 1)[1]
    rows = [line for line in table.splitlines()[1:] if line and not line.startswith("NOT")]
    assert len(rows) == sum(len(s.checks) for s in STEPS)
    assert all(line.endswith("not enforced") for line in rows)
    assert "observed (" not in text


def test_agreeing_observations_exit_0_and_disagreement_exits_1() -> None:
    """Exit 1 exactly when an observed result differs from the prediction, marked in the table."""
    code, text = _run(FakeObserver())
    assert code == 0
    assert "MISMATCH" not in text
    total = sum(len(s.checks) for s in STEPS)
    assert f"all {total} observed results match the prediction" in text
    flipped = "test/busybox -> test/nginx:80/TCP"
    code, text = _run(FakeObserver(frozenset({flipped})))
    assert code == 1
    mismatched = [line for line in text.splitlines() if line.endswith("✗ MISMATCH")]
    assert len(mismatched) == 2  # step 2 and step 3 both try that connection
    assert all(flipped in line for line in mismatched)


def test_observer_is_synced_once_per_shown_step_with_that_steps_state() -> None:
    """The data plane receives each step's full state: policies come and go as in the story."""
    observer = FakeObserver()
    _run(observer)
    assert [sorted(p.key for p in inv.policies) for inv in observer.synced] == [
        [],
        ["test/deny-all-policy"],
        ["test/allow-policy"],
        ["test/allow-different-namespace-policy"],
        ["test/allow-different-namespace-or-policy"],
        ["test-policy/default-ingress-egress-deny"],
    ]
    assert not observer.closed  # closing is the command's job, so --keep can skip it


def test_step_option_shows_only_that_step_on_the_state_before_it() -> None:
    """``--step 3`` shows step 3 alone, yet step 2's deletion and pods are in effect."""
    observer = FakeObserver()
    code, text = _run(observer, only_step=3)
    assert code == 0
    assert "Step 3/5" in text
    assert "Step 2/5" not in text
    assert "Step 4a/5" not in text
    assert len(observer.synced) == 1
    assert [p.key for p in observer.synced[0].policies] == ["test/allow-policy"]
    _, both_parts = _run(None, only_step=4)
    assert "Step 4a/5" in both_parts
    assert "Step 4b/5" in both_parts


def test_cli_predict_only_runs_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    """``kubefence tutorial --predict-only`` prints every step, the YAML and the table, exit 0."""
    assert main(["tutorial", "--predict-only"]) == 0
    out = capsys.readouterr().out
    assert "\x1b[" not in out  # captured stdout is not a terminal: no colour
    assert "$ kubectl apply -f examples/tutorial/deny-all-policy.yaml" in out
    assert "  ingress: []" in out
    assert "kubefence predicts: DENIED: test/busybox -> test/nginx on 80/TCP" in out
    assert "no ingress rules, so it allows nothing" in out  # the explanation follows
    assert f"{NOT_ENFORCED} (--predict-only was given)" in out


def test_cli_without_root_explains_why_and_predicts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """When enforcement is unavailable the reason is printed and the run is prediction-only."""
    monkeypatch.setattr(_tutorial, "enforcement_unavailable", lambda: "needs root (test)")
    monkeypatch.setattr(
        "kubefence.cli.commands.tutorial.enforcement_unavailable", lambda: "needs root (test)"
    )
    assert main(["tutorial", "--step", "1"]) == 0
    out = capsys.readouterr().out
    assert f"{NOT_ENFORCED} (needs root (test))" in out


def test_cli_rejects_an_unknown_step(capsys: pytest.CaptureFixture[str]) -> None:
    """``--step 9`` is a usage error (exit 2) naming the valid steps."""
    assert main(["tutorial", "--predict-only", "--step", "9"]) == 2
    assert "--step must be one of 1, 2, 3, 4, 5" in capsys.readouterr().err


def test_cli_reports_missing_examples_as_environment_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A directory without the manifests is an environment problem (exit 3), not a traceback."""
    assert main(["tutorial", "--predict-only", "--examples", str(tmp_path)]) == 3
    assert "--examples" in capsys.readouterr().err


def test_colour_only_when_asked() -> None:
    """The console paints with ANSI codes only when colour is on."""
    assert Console(io.StringIO(), color=False).paint("x", "red") == "x"
    assert Console(io.StringIO(), color=True).paint("x", "red") == "\x1b[31mx\x1b[0m"


def test_dns_check_is_shown_as_a_lookup() -> None:
    """The UDP 53 check reads as nslookup from the source pod, not as curl."""
    inventory, check = _check("5", "test-policy/busybox", "kube-system/kube-dns")
    assert check.is_dns
    assert check.protocol is Protocol.UDP
    assert kubectl_command(check, inventory).startswith(
        "kubectl exec -n test-policy busybox -- nslookup"
    )


def test_colour_follows_the_terminal_unless_turned_off(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Colour on a terminal; ``--no-color`` or ``NO_COLOR`` turn it off."""
    monkeypatch.setattr("kubefence.cli.commands.tutorial.stdout_is_tty", lambda: True)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert main(["tutorial", "--predict-only", "--step", "1"]) == 0
    assert "\x1b[" in capsys.readouterr().out
    assert main(["tutorial", "--predict-only", "--step", "1", "--no-color"]) == 0
    assert "\x1b[" not in capsys.readouterr().out
    monkeypatch.setenv("NO_COLOR", "1")
    assert main(["tutorial", "--predict-only", "--step", "1"]) == 0
    assert "\x1b[" not in capsys.readouterr().out


def test_curl_results_read_as_a_user_would() -> None:
    """Exit 0 shows the page's first lines (allowed), 28 the timeout (denied), 7 a refusal by
    the pod (reached), anything else is no verdict at all."""
    page = "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n<style>\n"
    ok = _tutorial.curl_observation("c", 0, stdout=page, stderr="")
    assert ok.allowed is True
    assert ok.lines == (
        "<!DOCTYPE html>",
        "<html>",
        "<head>",
        "<title>Welcome to nginx!</title>",
        "…",
    )
    timeout = "curl: (28) Connection timed out after 1001 milliseconds\n"
    denied = _tutorial.curl_observation("c", 28, stdout="", stderr=timeout)
    assert denied.allowed is False
    assert denied.lines == (timeout.strip(),)
    assert _tutorial.curl_observation("c", 7, stdout="", stderr="curl: (7) refused").allowed
    unknown = _tutorial.curl_observation("c", 6, stdout="", stderr="")
    assert unknown.allowed is None
    assert unknown.lines == ("curl exited with status 6",)
