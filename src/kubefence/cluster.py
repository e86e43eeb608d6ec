"""``kubefence.Cluster``: the Python API users call from their own scripts and CI tests.

Why this module exists: it wires the layers below it together (sources to load, semantics to
decide and explain, engine for matrices), so those layers never import each other sideways. In
the import-linter layers it sits above ``audit`` and below ``cli``; ``kubefence.Cluster`` and
``kubefence.load`` re-export it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kubefence.api import Inventory, Namespace, NetworkPolicy, Pod
from kubefence.semantics import (
    DEFAULT_SETTINGS,
    Decision,
    Settings,
    decide,
    parse_port,
    parse_protocol,
)

if TYPE_CHECKING:
    from kubefence.engine import Matrix  # imported lazily: numpy only when a matrix is asked

__all__ = ["Cluster", "load"]


class Cluster:
    """A validated set of namespaces, pods, services and policies, and questions about it."""

    def __init__(self, inventory: Inventory, *, settings: Settings = DEFAULT_SETTINGS) -> None:
        self.inventory = inventory
        self.settings = settings

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def from_objects(
        cls,
        objects: Iterable[Mapping[str, Any]],
        *,
        namespace: str = "default",
        settings: Settings = DEFAULT_SETTINGS,
    ) -> Cluster:
        """Build from manifest dicts (as ``yaml.safe_load`` gives them); same validation as
        files. Raises ``kubefence.ValidationError`` listing every problem."""
        from kubefence.sources.objects import inventory_from_objects

        return cls(inventory_from_objects(objects, default_namespace=namespace), settings=settings)

    @classmethod
    def load(
        cls,
        paths: str | Sequence[str],
        *,
        namespace: str = "default",
        settings: Settings = DEFAULT_SETTINGS,
    ) -> Cluster:
        """Load files, directories (recursive) or ``-`` (stdin)."""
        from kubefence.sources.files import load_paths

        if isinstance(paths, str):
            paths = [paths]
        return cls(load_paths(paths, default_namespace=namespace), settings=settings)

    # --- contents -------------------------------------------------------------------------

    @property
    def namespaces(self) -> tuple[Namespace, ...]:
        return self.inventory.namespaces

    @property
    def pods(self) -> tuple[Pod, ...]:
        return self.inventory.pods

    @property
    def policies(self) -> tuple[NetworkPolicy, ...]:
        return self.inventory.policies

    def __repr__(self) -> str:
        inv = self.inventory
        return (
            f"<Cluster {len(inv.namespaces)} namespaces, {len(inv.pods)} pods, "
            f"{len(inv.policies)} policies>"
        )

    # --- questions (semantics: can_reach / explain) ---------------------------------------

    def explain(self, src: str, dst: str, *, port: int | str, protocol: str = "TCP") -> Decision:
        """The full ``Decision`` for ``src -> dst`` (``"ns/pod"``, an IP, ``"node:NAME"``,
        ``"svc:ns/name"``): verdict, isolating policies, the admitting rule or each miss.
        Raises ``kubefence.InputError`` for an unknown pod or an unreadable port/protocol."""
        return decide(
            self.inventory, src, dst, port=port, protocol=protocol, settings=self.settings
        )

    def can_reach(self, src: str, dst: str, *, port: int | str, protocol: str = "TCP") -> bool:
        """May ``src`` open a connection to ``dst`` on ``port``/``protocol``?"""
        return self.explain(src, dst, port=port, protocol=protocol).allowed

    # --- whole-cluster (engine: matrix) ---------------------------------------------------

    def matrix(self, *, port: int | str, protocol: str = "TCP") -> Matrix:
        """Whether each pod may connect to each pod on ``port`` (a number, or a port name
        resolved per destination); ``.to_json()`` gives the ``matrix -o json`` shape."""
        from kubefence.engine import compute_matrix

        return compute_matrix(
            self.inventory,
            port=parse_port(port),
            protocol=parse_protocol(protocol),
            settings=self.settings,
        )


def load(
    paths: str | Sequence[str],
    *,
    namespace: str = "default",
    settings: Settings = DEFAULT_SETTINGS,
) -> Cluster:
    """``kubefence.load(paths)``: shorthand for ``Cluster.load``."""
    return Cluster.load(paths, namespace=namespace, settings=settings)
