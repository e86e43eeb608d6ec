"""The scenario corpus: real-world NetworkPolicy situations as data, with expected verdicts.

Why this module exists: every execution of the semantics (reference ``decide``, the numpy engine,
the nftables data plane) is held to the same expectations, so the scenarios are data files read
by one loader that all their tests import (``from tests.scenarios.corpus import
load_scenarios``).

A scenario file (``tests/scenarios/*.yaml``) holds one mapping:

    name: walkthrough-deny-all            # unique, used in test ids
    description: what situation this is
    source: where it comes from (k8s docs page, recipe, walk-through)
    manifests: |                          # a multi-document YAML string, a list of objects,
      apiVersion: v1                      # or {directory: examples/NAME} (the repository's files)
      kind: Namespace
      ...
    checks:
      - {from: default/busybox, to: test/nginx, port: 80, expect: deny}
      - {from: 198.18.9.9, to: test/nginx, port: 53, protocol: UDP, expect: allow}

``from``/``to`` are ``ns/pod`` or IP addresses; ``protocol`` defaults to TCP; ``port`` is a
number or a port name.

Scenarios with admin tiers (ClusterNetworkPolicy and its v1alpha1 kinds, the upstream
conformance suite among them) live in ``tests/scenarios/tiers/`` and are read by
``load_tier_scenarios``, not ``load_scenarios``, so each execution's runner names them apart;
the reference evaluator, the engine, the nftables ruleset and real packets all run them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from kubefence.api import Inventory

__all__ = [
    "SCENARIO_DIR",
    "TIER_SCENARIO_DIR",
    "Check",
    "Scenario",
    "all_checks",
    "load_scenario",
    "load_scenarios",
    "load_tier_scenarios",
]

SCENARIO_DIR = Path(__file__).resolve().parent
_REPOSITORY = SCENARIO_DIR.parent.parent
TIER_SCENARIO_DIR = SCENARIO_DIR / "tiers"
_KEYS = {"name", "description", "source", "manifests", "checks"}
_CHECK_KEYS = {"from", "to", "port", "protocol", "expect"}


class Check(NamedTuple):
    """One expectation: may ``src`` open a connection to ``dst`` on ``port``/``protocol``?"""

    src: str
    dst: str
    port: int | str
    protocol: str
    expect_allowed: bool

    @property
    def id(self) -> str:
        return f"{self.src}->{self.dst}:{self.port}/{self.protocol}"


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    source: str
    path: Path
    objects: tuple[Mapping[str, Any], ...]
    checks: tuple[Check, ...]

    @cached_property
    def _loaded(self) -> Inventory:
        from kubefence.sources.objects import inventory_from_objects

        return inventory_from_objects(self.objects)

    def inventory(self) -> Inventory:
        """The validated inventory of the manifests (loaded once, then reused)."""
        return self._loaded

    def check_ids(self) -> list[str]:
        return [f"{self.name}:{c.id}" for c in self.checks]


def _fail(path: Path, message: str) -> ValueError:
    return ValueError(f"{path.name}: {message}")


def _objects(path: Path, manifests: object) -> tuple[Mapping[str, Any], ...]:
    if isinstance(manifests, str):
        docs = [d for d in yaml.safe_load_all(manifests) if d is not None]
    elif isinstance(manifests, list):
        docs = manifests
    elif isinstance(manifests, dict) and manifests.keys() == {"directory"}:
        files = sorted((_REPOSITORY / str(manifests["directory"])).glob("*.yaml"))
        if not files:
            raise _fail(path, f"no *.yaml files in {manifests['directory']}")
        docs = [d for f in files for d in yaml.safe_load_all(f.read_text()) if d is not None]
    else:
        raise _fail(path, "'manifests' must be a YAML string, a list of objects or {directory: D}")
    if not all(isinstance(d, dict) for d in docs):
        raise _fail(path, "every manifest must be a mapping")
    return tuple(docs)


def _check(path: Path, raw: object) -> Check:
    if not isinstance(raw, dict) or not {"from", "to", "port", "expect"} <= raw.keys():
        raise _fail(path, f"a check needs from, to, port and expect: {raw!r}")
    if extra := raw.keys() - _CHECK_KEYS:
        raise _fail(path, f"unknown check keys {sorted(extra)}")
    if raw["expect"] not in ("allow", "deny"):
        raise _fail(path, f"expect must be allow or deny, not {raw['expect']!r}")
    port = raw["port"]
    if not isinstance(port, int | str):
        raise _fail(path, f"port must be a number or a name: {port!r}")
    return Check(
        src=str(raw["from"]),
        dst=str(raw["to"]),
        port=port,
        protocol=str(raw.get("protocol", "TCP")),
        expect_allowed=raw["expect"] == "allow",
    )


def load_scenario(path: Path) -> Scenario:
    """Read and shape-check one scenario file (not the manifests: that is the loader's job)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not data.keys() >= _KEYS:
        raise _fail(path, f"a scenario needs the keys {sorted(_KEYS)}")
    if extra := data.keys() - _KEYS:
        raise _fail(path, f"unknown keys {sorted(extra)}")
    checks = data["checks"]
    if not isinstance(checks, list) or not checks:
        raise _fail(path, "'checks' must be a non-empty list")
    return Scenario(
        name=str(data["name"]),
        description=str(data["description"]),
        source=str(data["source"]),
        path=path,
        objects=_objects(path, data["manifests"]),
        checks=tuple(_check(path, c) for c in checks),
    )


def load_scenarios(directory: Path = SCENARIO_DIR) -> list[Scenario]:
    """Every ``*.yaml`` scenario under ``directory``, sorted by name; names must be unique."""
    scenarios = sorted(
        (load_scenario(p) for p in sorted(directory.glob("*.yaml"))), key=lambda s: s.name
    )
    names = [s.name for s in scenarios]
    if duplicates := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"duplicate scenario names: {duplicates}")
    return scenarios


def load_tier_scenarios() -> list[Scenario]:
    """The scenarios with admin tiers (``tests/scenarios/tiers``); see the module docstring."""
    return load_scenarios(TIER_SCENARIO_DIR)


def all_checks(scenarios: Sequence[Scenario]) -> list[tuple[Scenario, Check]]:
    """Every (scenario, check) pair in corpus order, for one flat parametrized test."""
    return [(s, c) for s in scenarios for c in s.checks]
