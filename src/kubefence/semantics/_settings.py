"""Implementation-defined NetworkPolicy behaviour, chosen once and documented here.

Why this module exists: the Kubernetes specification leaves a few behaviours to each network
plugin. kubefence picks one answer for each (matching the upstream e2e model where it has one),
documents it in this single place, and lets users choose the other answer. Every evaluator
(reference, engine, data plane) reads the same ``Settings``.

| rule | setting                     | default | meaning of the default                     |
|------|-----------------------------|---------|--------------------------------------------|
| S07  | ``self_traffic_allowed``    | True    | a pod may always connect to itself         |
| S15  | ``ipblock_matches_pods``    | True    | ipBlock peers also match pod IPs           |
| S23  | ``host_network_selectable`` | False   | hostNetwork pods are never selected as     |
|      |                             |         | targets or pod peers; they act as node IPs |
| S24  | ``allow_from_node``         | True    | traffic from a pod's own node is allowed   |
| S25  | ``cut_established_on_deny`` | True    | a new deny cuts established connections    |
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_SETTINGS", "Settings"]


@dataclass(frozen=True, slots=True)
class Settings:
    """The implementation-defined choices (see the module docstring for the table)."""

    self_traffic_allowed: bool = True
    ipblock_matches_pods: bool = True
    host_network_selectable: bool = False
    allow_from_node: bool = True
    cut_established_on_deny: bool = True


DEFAULT_SETTINGS = Settings()
