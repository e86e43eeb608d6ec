"""kubefence: Kubernetes NetworkPolicy, exactly.

Validate manifests as strictly as the API server, decide and explain any connection, compute
whole-cluster reachability, and enforce policies with nftables on Linux network namespaces.

    >>> import kubefence
    >>> cluster = kubefence.load("examples/quickstart")          # doctest: +SKIP
    >>> cluster.can_reach("default/busybox", "test/nginx", port=80)  # doctest: +SKIP

Why this module exists: it is the curated public API, the names a user's script holds (the
cluster, its answers, the settings, the errors); everything else is reached through the layer
packages. Every name is imported on first use (PEP 562), from the module that defines it,
because every CLI command imports this package first: ``kubefence --help`` must not pay for the
API models, the semantics or numpy (``Matrix``), nor even for ``dataclasses`` (the errors).
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see cli/main.py)
if TYPE_CHECKING:
    from kubefence.cluster import Cluster, load
    from kubefence.engine import Matrix
    from kubefence.errors import (
        DataplaneError,
        EnvironmentProblem,
        FieldError,
        InputError,
        KubefenceError,
        ValidationError,
    )
    from kubefence.semantics import Decision, Reason, Settings
del TYPE_CHECKING  # not a public name

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


_LAZY = {
    "DataplaneError": "kubefence.errors",
    "EnvironmentProblem": "kubefence.errors",
    "FieldError": "kubefence.errors",
    "InputError": "kubefence.errors",
    "KubefenceError": "kubefence.errors",
    "ValidationError": "kubefence.errors",
    "Cluster": "kubefence.cluster",
    "load": "kubefence.cluster",
    "Decision": "kubefence.semantics",
    "Reason": "kubefence.semantics",
    "Settings": "kubefence.semantics",
    "Matrix": "kubefence.engine",
}


def __getattr__(name: str) -> object:
    """A public name on first use (PEP 562), from the module that defines it; cached."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kubefence' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
