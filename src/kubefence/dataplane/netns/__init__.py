"""The sandbox cluster on Linux network namespaces: the only code that runs ip/nft/conntrack.

Public surface (the contract with ``kubefence.cli``, the end-to-end tests and the benchmarks):
``Sandbox`` (``up``, ``attach``, ``apply``, ``probe``, ``probe_many``, ``probe_from_node``,
``confirm``, ``slot``, ``down``) and what is passed to it (``RulesetRenderer``, ``Verdict``);
the flow log reader (``FlowReader``, ``FlowEvent``, ``flows_over_limit``) of ``kubefence flows``;
the module-level ``down``/``status``/``list_sandboxes``/``require_state``/``manifest_paths``
that work from the recorded state alone; ``check_environment``, ``check_name``, ``entered``
(run code inside a pod's namespace), ``run`` (a command, optionally in a namespace: how the
policy agent sends its nft transactions) and ``RUN_DIR``; and the types those return, so callers can
name them. Address planning, the probe runner and the state records are internals: tests of
them import the private module that defines them. See ``_sandbox`` for how the modules divide
the work and ``_topology`` for the topology.
"""

from __future__ import annotations

from kubefence.dataplane.netns._apply import RulesetRenderer, Verdict
from kubefence.dataplane.netns._cluster_probe import ClusterProbe, cluster_pod_slots
from kubefence.dataplane.netns._flows import (
    ClusterFlowNodes,
    ClusterFlowReader,
    FlowEvent,
    FlowReader,
    cluster_flow_nodes,
    flows_over_limit,
)
from kubefence.dataplane.netns._matrix import ProbeMatrix
from kubefence.dataplane.netns._node_state import (
    NodeRecord,
    PodRecord,
    ProcessRecord,
    load_record,
    save_record,
)
from kubefence.dataplane.netns._nodes import (
    NodePlan,
    cluster_netns_pattern,
    create_nodes,
    destroy_nodes,
    node_from_name,
    node_pod_add,
    node_pod_remove,
    plan_nodes,
    pod_slot,
    reap,
    start_node_server,
    start_process,
    underlay_netns,
)
from kubefence.dataplane.netns._podserver import PodPorts
from kubefence.dataplane.netns._podserver import request as node_server_request
from kubefence.dataplane.netns._probe import Outcome, ProbeResult, ProbeTarget
from kubefence.dataplane.netns._sandbox import ApplyReport, Sandbox
from kubefence.dataplane.netns._slots import PodSlot, check_name
from kubefence.dataplane.netns._state import (
    RUN_DIR,
    SandboxState,
    SandboxStatus,
    ServerRecord,
    list_sandboxes,
    manifest_paths,
    require_state,
    status,
)
from kubefence.dataplane.netns._system import (
    check_environment,
    entered,
    process_alive,
    process_start_time,
    run,
)
from kubefence.dataplane.netns._topology import DownReport, down

__all__ = [
    "RUN_DIR",
    "ApplyReport",
    "ClusterFlowNodes",
    "ClusterFlowReader",
    "ClusterProbe",
    "DownReport",
    "FlowEvent",
    "FlowReader",
    "NodePlan",
    "NodeRecord",
    "Outcome",
    "PodPorts",
    "PodRecord",
    "PodSlot",
    "ProbeMatrix",
    "ProbeResult",
    "ProbeTarget",
    "ProcessRecord",
    "RulesetRenderer",
    "Sandbox",
    "SandboxState",
    "SandboxStatus",
    "ServerRecord",
    "Verdict",
    "check_environment",
    "check_name",
    "cluster_flow_nodes",
    "cluster_netns_pattern",
    "cluster_pod_slots",
    "create_nodes",
    "destroy_nodes",
    "down",
    "entered",
    "flows_over_limit",
    "list_sandboxes",
    "load_record",
    "manifest_paths",
    "node_from_name",
    "node_pod_add",
    "node_pod_remove",
    "node_server_request",
    "plan_nodes",
    "pod_slot",
    "process_alive",
    "process_start_time",
    "reap",
    "require_state",
    "run",
    "save_record",
    "start_node_server",
    "start_process",
    "status",
    "underlay_netns",
]

from kubefence.dataplane.netns._exec import PodRun, exec_in_pod, run_in_pod

__all__ += ["PodRun", "exec_in_pod", "run_in_pod"]
