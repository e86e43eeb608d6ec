"""What a node runs beside its pods when the modules are installed: Service DNAT and cluster DNS.

Why this module exists: kube-proxy-lite (``kubefence.node._proxy``) and the DNS server of the
``kubefence/dns`` image (``kubefence.node._dns``) are written separately from the node component;
this is the one place that starts and stops them, so the component works (with a clear log line)
where they are missing, and their constructors are named once.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from kubefence.client import Kube

__all__ = ["start_dns", "start_proxy", "stop_quietly"]

_LOG = logging.getLogger("kubefence.node.addons")


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        _LOG.warning("%s is not installed (%s)", name, exc)
        return None


def start_proxy(kube: Kube, *, netns: str, node: str) -> Any:
    """The node's Service DNAT, started; None when ``_proxy`` is not installed."""
    module = _module("kubefence.node._proxy")
    if module is None:
        _LOG.warning("node %s: no Service DNAT (ClusterIPs do not answer)", node)
        return None
    return module.ServiceProxy(kube, netns=netns, node=node).start()


def start_dns(kube: Kube, *, netns: str) -> Any:
    """Cluster DNS inside pod namespace ``netns``, started; None when ``_dns`` is missing."""
    module = _module("kubefence.node._dns")
    if module is None:
        return None
    return module.DnsServer(kube, netns=netns).start()


def stop_quietly(server: Any, **options: Any) -> None:
    try:
        server.stop(**options)
    except Exception as exc:  # stopping must never take the node down
        _LOG.warning("stopping %s: %s", type(server).__name__, exc)
