"""kubefence: Kubernetes NetworkPolicy, exactly.

Validate manifests as strictly as the API server, decide and explain any connection, compute
whole-cluster reachability, and enforce policies with nftables on Linux network namespaces.

    >>> import kubefence
    >>> cluster = kubefence.load("examples/quickstart")          # doctest: +SKIP
    >>> cluster.can_reach("default/busybox", "test/nginx", port=80)  # doctest: +SKIP

Why this module exists: it is the curated public API, the names a user's script holds (the
cluster, its answers, the settings, the errors); everything else is reached through the layer
packages. ``Matrix`` is imported on first use, so ``import kubefence`` (and every CLI command)
does not pay for numpy until a matrix is asked for.
"""

from __future__ import annotations

import typing

from kubefence.cluster import Cluster, load
from kubefence.errors import (
    DataplaneError,
    EnvironmentProblem,
    FieldError,
    InputError,
    KubefenceError,
    ValidationError,
)
from kubefence.semantics import Decision, Reason, Settings

if typing.TYPE_CHECKING:
    from kubefence.engine import Matrix

__version__ = "0.1.0"

__all__ = [
    "Cluster",
    "DataplaneError",
    "Decision",
    "EnvironmentProblem",
    "FieldError",
    "InputError",
    "KubefenceError",
    "Matrix",
    "Reason",
    "Settings",
    "ValidationError",
    "__version__",
    "load",
]


def __getattr__(name: str) -> object:
    """``kubefence.Matrix`` on first use (PEP 562), keeping numpy out of ``import kubefence``."""
    if name == "Matrix":
        from kubefence.engine import Matrix

        globals()["Matrix"] = Matrix
        return Matrix
    raise AttributeError(f"module 'kubefence' has no attribute {name!r}")
