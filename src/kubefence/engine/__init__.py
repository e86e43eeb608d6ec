"""Vectorised whole-cluster reachability (numpy): the semantic core's answers for every pair.

Pure (no I/O). ``compute_matrix`` answers one port; ``ReachabilityAnalysis`` prepares an
inventory once and answers many ports; ``port_classes`` names the ports worth asking about and
``port_masks`` answers all of them at once; ``diff_inventories`` compares two versions of a
cluster; ``ReachabilityModel`` follows single changes without recomputing everything.
"""

from __future__ import annotations

from kubefence.engine._compute import ReachabilityAnalysis, compute_matrix
from kubefence.engine._diff import Change, ReachabilityDiff, diff_inventories
from kubefence.engine._incremental import ReachabilityModel
from kubefence.engine._masks import mask_bits, node_pairs, port_masks
from kubefence.engine._matrix import Matrix, NamespaceSummary
from kubefence.engine._ports import PortClass, port_classes

__all__ = [
    "Change",
    "Matrix",
    "NamespaceSummary",
    "PortClass",
    "ReachabilityAnalysis",
    "ReachabilityDiff",
    "ReachabilityModel",
    "compute_matrix",
    "diff_inventories",
    "mask_bits",
    "node_pairs",
    "port_classes",
    "port_masks",
]
