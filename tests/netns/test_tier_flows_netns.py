"""``kubefence flows`` on a tier drop, real packets: the line names the tier, policy and rule.

The log prefix of a tier Deny step carries its set, tier and first rule
(``kf deny bl_in_s2 Baseline tenant-isolation ingress[1]``), which ``kubefence flows`` shows as
``droppedBy``; the explanation is the reference evaluator's, which knows the tiers too.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from tests.netns.conftest import unique_name
from tests.netns.test_flows_netns import _flows, _tcp, flow_records

from kubefence.dataplane.netns import Sandbox
from kubefence.dataplane.nft import FlowLog
from kubefence.sources.files import STDIN, load_paths

pytestmark = pytest.mark.netns


MANIFESTS = (
    Path(__file__).resolve().parent.parent / "golden/inputs/features/tiers-multi-tenant.yaml"
)


def test_tier_drop_is_logged_with_its_tier_policy_and_rule(sandbox_names: list[str]) -> None:
    text = MANIFESTS.read_text(encoding="utf-8")
    name = unique_name()
    sandbox_names.append(name)
    sandbox = Sandbox.up(
        load_paths([STDIN], stdin=io.BytesIO(text.encode())),
        name=name,
        manifests=[("manifests.yaml", text.encode())],
        flow_log=FlowLog(rate=100, burst=50),
    )
    with _flows(sandbox.name, duration=2.5) as process:
        assert not _tcp(sandbox, "blue/web", "red/web", 80)  # Baseline: other tenant
        assert _tcp(sandbox, "red/client", "red/web", 80)  # Baseline: same tenant
    records = [r for r in flow_records(process) if "verdict" in r]
    denied = [r for r in records if r["verdict"] == "denied"]
    assert len(denied) == 1, records
    assert denied[0]["source"] == "blue/web"
    assert denied[0]["destination"] == "red/web"
    assert denied[0]["droppedBy"] == "bl_in_s2 Baseline tenant-isolation ingress[1]"
    assert denied[0]["predicted"] == "denied"
    assert denied[0]["explanation"] == (
        "ingress at red/web: denied by Baseline ClusterNetworkPolicy tenant-isolation "
        "ingress[1] (other-tenants)"
    )
    allowed = [r for r in records if r["verdict"] == "allowed"]
    assert [(r["source"], r["destination"]) for r in allowed] == [("red/client", "red/web")]
