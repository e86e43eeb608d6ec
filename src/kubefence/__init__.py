"""kubefence: Kubernetes NetworkPolicy, exactly.

Validate manifests as strictly as the API server, decide and explain any connection, compute
whole-cluster reachability, and enforce policies with nftables on Linux network namespaces.

    >>> import kubefence
    >>> cluster = kubefence.load("examples/quickstart")          # doctest: +SKIP
    >>> cluster.can_reach("default/busybox", "test/nginx", port=80)  # doctest: +SKIP
"""

from __future__ import annotations

from kubefence._cluster import Cluster, load
from kubefence.errors import (
    DataplaneError,
    EnvironmentProblem,
    FieldError,
    InputError,
    KubefenceError,
    ValidationError,
)
from kubefence.semantics import Settings

__version__ = "0.1.0"

__all__ = [
    "Cluster",
    "DataplaneError",
    "EnvironmentProblem",
    "FieldError",
    "InputError",
    "KubefenceError",
    "Settings",
    "ValidationError",
    "__version__",
    "load",
]
