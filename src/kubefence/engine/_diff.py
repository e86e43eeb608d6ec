"""What changes between two versions of a cluster: connections that become allowed or denied.

Why this module exists: a pull request that edits policies should say, before merge, which
connections it opens and which it closes, on every port. Both versions are evaluated on the
union of their port classes (so each class answers for all its ports in both versions) and
compared cell by cell on the pods present in both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from kubefence.api import Inventory, Protocol
from kubefence.engine._compute import ReachabilityAnalysis
from kubefence.engine._ports import PortClass, port_classes
from kubefence.semantics import DEFAULT_SETTINGS, Settings

__all__ = ["Change", "ReachabilityDiff", "diff_inventories"]


@dataclass(frozen=True, slots=True, order=True)
class Change:
    """``src`` -> ``dst`` on the ports of ``port`` (a port class) becomes allowed or denied."""

    src: str
    dst: str
    protocol: Protocol
    port: str
    allowed: bool  # True: newly allowed; False: newly denied


@dataclass(frozen=True, slots=True)
class ReachabilityDiff:
    """Changes sorted by (src, dst, protocol, port); pods present in one version only."""

    changes: tuple[Change, ...]
    port_classes: tuple[PortClass, ...]
    only_old: tuple[str, ...]
    only_new: tuple[str, ...]

    @property
    def newly_allowed(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.allowed)

    @property
    def newly_denied(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if not c.allowed)

    @property
    def changed(self) -> bool:
        return bool(self.changes or self.only_old or self.only_new)


def diff_inventories(
    old: Inventory,
    new: Inventory,
    *,
    protocols: Iterable[Protocol] | None = None,
    settings: Settings = DEFAULT_SETTINGS,
) -> ReachabilityDiff:
    """Every (src, dst, port class) whose verdict differs between ``old`` and ``new``."""
    classes = port_classes([old, new], protocols=protocols)
    old_keys = [p.key for p in old.pods]
    new_keys = [p.key for p in new.pods]
    old_pos = {k: i for i, k in enumerate(old_keys)}
    new_pos = {k: i for i, k in enumerate(new_keys)}
    common = [k for k in new_keys if k in old_pos]  # inventory order: by namespace, then name
    pick_old = np.asarray([old_pos[k] for k in common], dtype=np.int64)
    pick_new = np.asarray([new_pos[k] for k in common], dtype=np.int64)
    before = ReachabilityAnalysis(old, settings=settings)
    after = ReachabilityAnalysis(new, settings=settings)
    changes: list[Change] = []
    for pc in classes:
        a = before.matrix(pc.port, pc.protocol).dense()[np.ix_(pick_old, pick_old)]
        b = after.matrix(pc.port, pc.protocol).dense()[np.ix_(pick_new, pick_new)]
        for i, j in zip(*np.nonzero(a != b), strict=True):
            changes.append(
                Change(
                    src=common[i],
                    dst=common[j],
                    protocol=pc.protocol,
                    port=pc.label,
                    allowed=bool(b[i, j]),
                )
            )
    order = {(pc.protocol, pc.label): k for k, pc in enumerate(classes)}
    rank = {k: i for i, k in enumerate(common)}
    changes.sort(key=lambda c: (rank[c.src], rank[c.dst], order[(c.protocol, c.port)]))
    return ReachabilityDiff(
        changes=tuple(changes),
        port_classes=classes,
        only_old=tuple(k for k in old_keys if k not in new_pos),
        only_new=tuple(k for k in new_keys if k not in old_pos),
    )
