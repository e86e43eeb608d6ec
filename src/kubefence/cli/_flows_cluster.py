"""``kubefence flows --cluster NAME``: the flow logs of every node of a sandbox cluster.

Why this module exists apart from ``_flows``: the cluster mode reads other things than the
sandbox mode. Each node's agent (``--flow-log``, on in ``cluster up``) logs new connections to
NFLOG in that node's namespace; the namespaces and the pods' nodes come from the node records
(``dataplane.netns.cluster_flow_nodes``) and the reading from ``dataplane.netns.
ClusterFlowReader``, which keeps one line per connection (a connection between two nodes
crosses two tables). The explanations come from what the cluster's API server stores
(``kubefence.client.read_objects`` through the cluster's kubeconfig), read again at most
every ``REFRESH`` seconds while lines arrive, so a policy applied while following is explained
as the agents enforce it. It starts no process.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from kubefence.api import Inventory
from kubefence.cli._flows import (  # the sandbox mode's parts, shared
    FlowExplainer,
    follow,
)
from kubefence.cli._flows import (
    _OverCounter as OverCounter,
)
from kubefence.dataplane import netns
from kubefence.dataplane.nft import FlowLog
from kubefence.errors import EnvironmentProblem
from kubefence.semantics import DEFAULT_SETTINGS

__all__ = ["REFRESH", "ClusterExplainer", "run_cluster_flows"]

REFRESH = 2.0  # seconds an explanation's view of the API server may be old


class ClusterExplainer:
    """A ``FlowExplainer`` over the objects the cluster's API server stores, renewed when
    older than ``REFRESH`` seconds (only when a line needs it)."""

    def __init__(self, kubeconfig: str, nodes: netns.ClusterFlowNodes) -> None:
        self.kubeconfig = kubeconfig
        self.nodes = nodes
        self._explainer: FlowExplainer | None = None
        self._read_at = 0.0

    def _inventory(self) -> Inventory:
        from kubefence.client import connect, read_objects
        from kubefence.sources.objects import inventory_from_objects

        kube = connect(self.kubeconfig)
        try:
            return inventory_from_objects(read_objects(kube))
        finally:
            kube.close()

    def explainer(self) -> FlowExplainer:
        if self._explainer is None or time.monotonic() - self._read_at > REFRESH:
            inventory = self._inventory()
            names = {address: key for address, (key, _) in self.nodes.pods.items()}
            for pod in inventory.pods:
                names.update((str(a), pod.key) for a in pod.ips)
            self._explainer = FlowExplainer(inventory, settings=DEFAULT_SETTINGS, names=names)
            self._read_at = time.monotonic()
        return self._explainer

    def record(self, node: str, event: netns.FlowEvent) -> dict[str, Any]:
        record = self.explainer().record(event)
        record["node"] = node  # the node whose table judged it
        return record


def run_cluster_flows(args: argparse.Namespace) -> int:
    """Read, explain and print the cluster's new connections until done."""
    from kubefence.control.cluster import cluster_status

    netns.check_environment()
    info = cluster_status(args.cluster)
    if not info.running:
        raise EnvironmentProblem(f"cluster {args.cluster!r} is not running")
    nodes = netns.cluster_flow_nodes(args.cluster, info.directory)
    if not nodes.netns:
        raise EnvironmentProblem(f"cluster {args.cluster!r} has no nodes (cluster up --nodes)")
    flow_log = FlowLog()  # what ``cluster up`` gives its agents
    explainer = ClusterExplainer(str(info.directory / "kubeconfig"), nodes)
    explainer.explainer()  # fail early (exit 3) when the API server cannot be read
    with netns.ClusterFlowReader(nodes, group=flow_log.group) as reader:
        if reader.over_limit() is None:
            raise EnvironmentProblem(
                f"the agents of cluster {args.cluster!r} log no flows (they run without "
                "--flow-log; 'kubefence cluster up' turns it on)"
            )
        counter = OverCounter(reader.over_limit)
        print(
            f"kubefence flows: cluster {args.cluster!r} ({len(nodes.netns)} nodes), new "
            f"connections as the nodes' nftables judge them (at most {flow_log.rate}/s per "
            "node logged)" + ("; Ctrl-C to stop" if args.follow else ""),
            file=sys.stderr,
            flush=True,
        )
        return follow(
            args,
            lambda wait: (explainer.record(node, event) for node, event in reader.read(wait)),
            counter,
            lambda: reader.overruns,
            flow_log.rate,
        )
