"""Seeded generator of large, realistic manifest sets for benchmarks.

Why this module exists: loading, the engine and the data plane are measured on the same kind of
cluster: many namespaces with team/env labels, pods from Deployments sharing label sets plus bare
pods with IPs, and policies mixing every feature (default deny, pod and namespace selectors alone
and combined, matchExpressions, ipBlock with except, named ports, port ranges, egress to DNS).
Addresses lie in 198.18.0.0/15 (IPv4) and fd00::/8 (IPv6), ranges no real network uses. The
same ``seed`` always yields the same objects, in the same order.

    from benchmarks.generate import generate_cluster, write_yaml
    objects = generate_cluster(pods=10_000, namespaces=1_000, policies=3_000, seed=1)
    write_yaml(objects, "/tmp/cluster.yaml")
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["APPS", "TEAMS", "generate_cluster", "write_yaml"]

TEAMS = ("payments", "search", "identity", "storage", "frontend", "data", "infra", "mobile")
ENVS = ("prod", "staging", "dev")
APPS = ("web", "api", "db", "cache", "worker", "queue", "auth", "metrics")
TIERS = {
    "web": "frontend",
    "api": "backend",
    "db": "data",
    "cache": "data",
    "worker": "backend",
    "queue": "backend",
    "auth": "backend",
    "metrics": "ops",
}

_PORTS: dict[str, list[dict[str, Any]]] = {
    "web": [{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}],
    "api": [{"name": "http", "containerPort": 8080}, {"name": "grpc", "containerPort": 9000}],
    "db": [{"name": "postgres", "containerPort": 5432}],
    "cache": [{"name": "redis", "containerPort": 6379}],
    "worker": [{"name": "metrics", "containerPort": 9090}],
    "queue": [{"name": "amqp", "containerPort": 5672}, {"name": "stats", "containerPort": 15672}],
    "auth": [
        {"name": "http", "containerPort": 8080},
        {"name": "dns", "containerPort": 53, "protocol": "UDP"},
    ],
    "metrics": [{"name": "metrics", "containerPort": 9090}],
}


def _namespace(name: str, rng: random.Random) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"team": rng.choice(TEAMS), "env": rng.choice(ENVS)}},
    }


def _template(app: str, version: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": app, "tier": TIERS[app], "version": version}},
        "spec": {
            "containers": [
                {
                    "name": app,
                    "image": f"registry.example/{app}:{version}",
                    "ports": [dict(p) for p in _PORTS[app]],
                }
            ]
        },
    }


def _deployment(ns: str, app: str, replicas: int, rng: random.Random) -> dict[str, Any]:
    version = rng.choice(("v1", "v2"))
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": app, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": _template(app, version),
        },
    }


def _pod(ns: str, name: str, app: str, serial: int, rng: random.Random) -> dict[str, Any]:
    template = _template(app, rng.choice(("v1", "v2")))
    host = serial & 0x1FFFF  # 198.18.0.0/15 (RFC 2544 benchmarking) holds 131,072 addresses
    ip4 = f"198.{18 + (host >> 16)}.{(host >> 8) & 255}.{host & 255}"
    status: dict[str, Any] = {"phase": "Running", "podIP": ip4}
    if serial % 5 == 0:
        status["podIPs"] = [{"ip": ip4}, {"ip": f"fd00::{serial:x}"}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": template["metadata"]["labels"]},
        "spec": {**template["spec"], "nodeName": f"node-{serial % 16}"},
        "status": status,
    }


def _selector(rng: random.Random) -> dict[str, Any]:
    """A pod selector: matchLabels, matchExpressions or both."""
    choice = rng.random()
    if choice < 0.5:
        return {"matchLabels": {"app": rng.choice(APPS)}}
    if choice < 0.8:
        return {
            "matchExpressions": [
                {
                    "key": "tier",
                    "operator": "In",
                    "values": sorted(rng.sample(sorted(set(TIERS.values())), 2)),
                }
            ]
        }
    return {
        "matchLabels": {"app": rng.choice(APPS)},
        "matchExpressions": [
            {
                "key": "version",
                "operator": rng.choice(("Exists", "NotIn")),
                **({"values": ["v1"]} if rng.random() < 0.5 else {}),
            }
        ],
    }


def _fix_expression(selector: dict[str, Any]) -> dict[str, Any]:
    for expr in selector.get("matchExpressions", []):
        if expr["operator"] in ("Exists", "DoesNotExist"):
            expr.pop("values", None)
        elif not expr.get("values"):
            expr["values"] = ["v1"]
    return selector


def _peer(rng: random.Random) -> dict[str, Any]:
    choice = rng.random()
    if choice < 0.35:
        return {"podSelector": _fix_expression(_selector(rng))}
    if choice < 0.6:
        return {"namespaceSelector": {"matchLabels": {"team": rng.choice(TEAMS)}}}
    if choice < 0.85:
        return {
            "namespaceSelector": {"matchLabels": {"env": rng.choice(ENVS)}},
            "podSelector": {"matchLabels": {"app": rng.choice(APPS)}},
        }
    # A /20 of 198.18.0.0/15 (the pods' range) with one /24 hole; the same two draws as ever,
    # so the rest of a seed's cluster does not move.
    block, hole = rng.randrange(256), rng.randrange(256)
    second, third = 18 + (block & 1), block & 0xF0
    return {
        "ipBlock": {
            "cidr": f"198.{second}.{third}.0/20",
            "except": [f"198.{second}.{third + (hole & 15)}.0/24"],
        }
    }


def _ports(rng: random.Random) -> list[dict[str, Any]]:
    choice = rng.random()
    if choice < 0.3:
        return []
    if choice < 0.6:
        return [{"port": rng.choice(("http", "metrics", "grpc", "postgres"))}]
    if choice < 0.8:
        return [{"protocol": "TCP", "port": rng.choice((80, 443, 5432, 6379, 8080))}]
    if choice < 0.9:
        return [{"port": 8000, "endPort": 8100}]
    return [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]


def _policy(ns: str, index: int, rng: random.Random) -> dict[str, Any]:
    kind = rng.random()
    spec: dict[str, Any]
    if kind < 0.15:
        spec = {"podSelector": {}, "policyTypes": ["Ingress"]}  # default deny ingress
    elif kind < 0.25:
        spec = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}  # deny all
    elif kind < 0.75:
        spec = {
            "podSelector": _fix_expression(_selector(rng)),
            "ingress": [
                {"from": [_peer(rng) for _ in range(rng.randint(1, 3))], "ports": _ports(rng)}
                for _ in range(rng.randint(1, 2))
            ],
        }
    else:
        spec = {
            "podSelector": _fix_expression(_selector(rng)),
            "egress": [
                {
                    "to": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                            }
                        }
                    ],
                    "ports": [{"protocol": "UDP", "port": 53}],
                },
                {"to": [_peer(rng)], "ports": _ports(rng)},
            ],
            "policyTypes": ["Egress"],
        }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"policy-{index}", "namespace": ns},
        "spec": spec,
    }


def generate_cluster(
    *,
    pods: int = 10_000,
    namespaces: int = 1_000,
    policies: int = 3_000,
    seed: int = 0,
    bare_pod_fraction: float = 0.2,
) -> list[dict[str, Any]]:
    """Manifests for ``namespaces`` namespaces, exactly ``pods`` pods (most from Deployments,
    ``bare_pod_fraction`` as Pods with IPs) and ``policies`` policies, deterministic per seed."""
    rng = random.Random(seed)
    names = [f"ns-{i:04d}" for i in range(namespaces)]
    objects: list[dict[str, Any]] = [_namespace(n, rng) for n in names]
    bare = int(pods * bare_pod_fraction)
    workload_pods = pods - bare
    # Deployment pods: spread evenly over namespaces, a few apps per namespace.
    per_ns = [
        workload_pods // namespaces + (1 if i < workload_pods % namespaces else 0)
        for i in range(namespaces)
    ]
    for ns, count in zip(names, per_ns, strict=True):
        apps = rng.sample(APPS, k=min(len(APPS), max(1, min(3, count))))
        shares = [
            count // len(apps) + (1 if j < count % len(apps) else 0) for j in range(len(apps))
        ]
        for app, share in zip(apps, shares, strict=True):
            if share:
                objects.append(_deployment(ns, app, share, rng))
    for serial, i in enumerate(range(bare), start=1):
        app = rng.choice(APPS)
        objects.append(_pod(names[i % namespaces], f"{app}-pod-{i}", app, serial, rng))
    for i in range(policies):
        objects.append(_policy(names[rng.randrange(namespaces)], i, rng))
    return objects


def write_yaml(objects: Iterable[Mapping[str, Any]], path: str | Path) -> Path:
    """Write objects as one multi-document YAML file (libyaml's emitter when present)."""
    dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    target = Path(path)
    with target.open("w", encoding="utf-8") as handle:
        yaml.dump_all(
            [dict(o) for o in objects], handle, Dumper=dumper, sort_keys=False, explicit_start=True
        )
    return target
