"""The sandbox cluster on Linux network namespaces: the only code that runs ip/nft/conntrack.

Public surface: ``Sandbox`` (``up``, ``attach``, ``apply``, ``probe``, ``probe_many``,
``down``), the module-level ``down``/``status``/``list_sandboxes`` that work from the recorded
state alone, and the probe result types. See ``_sandbox`` for the topology.
"""

from __future__ import annotations

from kubefence.dataplane.netns._plan import NODE_V4, NODE_V6, PodSlot, check_name, plan_slots
from kubefence.dataplane.netns._probe import Outcome, ProbeResult, ProbeTarget, run_probes
from kubefence.dataplane.netns._sandbox import (
    HOST_NETWORK_REASON,
    ApplyReport,
    DownReport,
    ProbeMatrix,
    RulesetRenderer,
    Sandbox,
    SandboxStatus,
    Verdict,
    down,
    list_sandboxes,
    manifest_paths,
    require_state,
    sandbox_inventory,
    status,
)
from kubefence.dataplane.netns._state import RUN_DIR, SandboxState, ServerRecord
from kubefence.dataplane.netns._system import check_environment, entered

__all__ = [
    "HOST_NETWORK_REASON",
    "NODE_V4",
    "NODE_V6",
    "RUN_DIR",
    "ApplyReport",
    "DownReport",
    "Outcome",
    "PodSlot",
    "ProbeMatrix",
    "ProbeResult",
    "ProbeTarget",
    "RulesetRenderer",
    "Sandbox",
    "SandboxState",
    "SandboxStatus",
    "ServerRecord",
    "Verdict",
    "check_environment",
    "check_name",
    "down",
    "entered",
    "list_sandboxes",
    "manifest_paths",
    "plan_slots",
    "require_state",
    "run_probes",
    "sandbox_inventory",
    "status",
]

from kubefence.dataplane.netns._exec import PodRun, exec_in_pod, run_in_pod

__all__ += ["PodRun", "exec_in_pod", "run_in_pod"]
