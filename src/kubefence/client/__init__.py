"""A Kubernetes API client for kubefence's own processes and for reading live clusters.

Why this package exists: the node component, the controllers, the policy agent and the analysis
commands' ``--kubeconfig`` input all talk to an API server, ours or a real one, over HTTPS with
their own credentials (the API is the only seam between the control plane and everything else).
They share one way to connect (``connect``: a kubeconfig file and context, or the in-cluster
service account), raw JSON requests on any resource (``Kube``), informers with list-then-watch
semantics (``Informer``) and a paginated read-only reader (``read_objects``). Transport and
authentication come from the official ``kubernetes`` client; this package adds what it lacks:
generic resources as plain dicts (no per-kind model classes: faster, and new kinds need no code),
and informers (the Python client has none).
"""

from __future__ import annotations

from kubefence.client._informer import Event, Informer
from kubefence.client._kube import ApiError, Kube, Resource, connect
from kubefence.client._live import LIVE_RESOURCES, read_objects

__all__ = [
    "LIVE_RESOURCES",
    "ApiError",
    "Event",
    "Informer",
    "Kube",
    "Resource",
    "connect",
    "read_objects",
]
