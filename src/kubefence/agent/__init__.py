"""The policy agent: one per node, it keeps the kernel's rules equal to what the API stores.

Why this package exists: Kubernetes only stores NetworkPolicy objects; a network plugin's agent
on each node enforces them. This one lists and watches Namespaces, Pods and NetworkPolicies
through ``kubefence.client`` (informers: list, watch, bookmarks, 410 re-list, back-off,
resync), validates each object as every kubefence input is validated, plans the node's
``inet kubefence`` table with ``dataplane.nft`` (only its own pods dispatched, peers from the
whole cluster) and installs each change batch as one atomic nft transaction through
``dataplane.netns``. It fails closed at start, keeps its rules while the API is unreachable,
holds a Lease per node so two agents never fight over one table, serves ``/healthz``,
``/readyz`` and Prometheus ``/metrics``, logs JSON, and posts an Event on a policy it cannot
compile (whose pods then stay isolated). How the pieces divide the work: ``_store`` (objects
to an inventory), ``_enforce`` (the table), ``_api`` (Lease, Events), ``_ops`` (metrics,
endpoints, logs), ``_agent`` (the order of things), ``_main`` (the command line).

It reaches the control plane only over HTTPS (it never imports ``kubefence.control``).
"""

from __future__ import annotations

from kubefence.agent._agent import Agent, Options
from kubefence.agent._main import add_arguments, main, options_from_args, run

__all__ = ["Agent", "Options", "add_arguments", "main", "options_from_args", "run"]
