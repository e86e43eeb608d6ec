"""The sandbox cluster on Linux network namespaces: the only code that runs ip/nft/conntrack.

Public surface: ``Sandbox`` (``up``, ``attach``, ``apply``, ``probe``, ``probe_many``,
``down``), the module-level ``down``/``status``/``list_sandboxes`` that work from the recorded
state alone, and the probe result types. See ``_sandbox`` for how the modules divide the work
and ``_topology`` for the topology.
"""

from __future__ import annotations

from kubefence.dataplane.netns._apply import RulesetRenderer, Verdict
from kubefence.dataplane.netns._probe import Outcome, ProbeResult, ProbeTarget, run_probes
from kubefence.dataplane.netns._probing import ProbeMatrix
from kubefence.dataplane.netns._sandbox import HOST_NETWORK_REASON, ApplyReport, Sandbox
from kubefence.dataplane.netns._slots import (
    NODE_V4,
    NODE_V6,
    PodSlot,
    check_name,
    plan_slots,
    sandbox_inventory,
)
from kubefence.dataplane.netns._state import RUN_DIR, SandboxState, ServerRecord
from kubefence.dataplane.netns._status import (
    SandboxStatus,
    list_sandboxes,
    manifest_paths,
    require_state,
    status,
)
from kubefence.dataplane.netns._system import check_environment, entered
from kubefence.dataplane.netns._topology import DownReport, down

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
