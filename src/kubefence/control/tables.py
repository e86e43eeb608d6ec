"""Server-side printing: `meta.k8s.io/v1 Table` responses, which `kubectl get` asks for.

kubectl sends `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` and prints the rows as
the server made them, so the columns (and `-o wide`'s extra ones, priority 1) are defined per
kind in the registry; NAME comes first and AGE is added here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from kubefence.control.registry import ResourceType

__all__ = ["age", "table", "wants_table"]

Obj = dict[str, Any]


def wants_table(accept: str) -> bool:
    """True when the first acceptable type the client names is a v1 or v1beta1 Table."""
    for part in accept.split(","):
        params = {p.strip() for p in part.split(";")[1:]}
        if "as=Table" in params and "g=meta.k8s.io" in params:
            return True
        if part.strip().startswith("application/json") and "as=Table" not in params:
            return False
    return False


def age(timestamp: str | None, *, now: dt.datetime | None = None) -> str:
    """kubectl's short duration: 45s, 5m12s, 3h, 2d4h, 400d."""
    if not timestamp:
        return "<unknown>"
    try:
        then = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    seconds = int(((now or dt.datetime.now(dt.UTC)) - then).total_seconds())
    if seconds < 0:
        return "0s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def _partial(obj: Obj, include: str) -> Any:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def table(
    rt: ResourceType,
    objects: Iterable[Obj],
    *,
    resource_version: str = "",
    include_object: str = "Metadata",
    continue_token: str = "",
    headers: bool = True,
) -> Obj:
    """A Table of objects with the kind's columns."""
    now = dt.datetime.now(dt.UTC)
    rows = []
    for obj in objects:
        metadata = obj.get("metadata", {})
        cells: list[Any] = [metadata.get("name", "")] if rt.name_column else []
        cells.extend(column.cell(obj) for column in rt.columns if column.priority == 0)
        if rt.age_column:
            cells.append(age(metadata.get("creationTimestamp"), now=now))
        cells.extend(column.cell(obj) for column in rt.columns if column.priority != 0)
        rows.append({"cells": cells, "object": _partial(obj, include_object)})
    body: Obj = {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": _columns(rt) if headers else [],
        "rows": rows,
    }
    if continue_token:
        body["metadata"]["continue"] = continue_token
    return body


def _columns(rt: ResourceType) -> list[Obj]:
    defs = [
        {
            "name": "Name",
            "type": "string",
            "format": "name",
            "description": "Name must be unique within a namespace.",
            "priority": 0,
        }
    ][: 1 if rt.name_column else 0]
    ordered = [c for c in rt.columns if c.priority == 0]
    for column in ordered:
        defs.append(
            {
                "name": column.name,
                "type": column.type,
                "format": column.format,
                "description": column.description or column.name,
                "priority": column.priority,
            }
        )
    if rt.age_column:
        defs.append(
            {
                "name": "Age",
                "type": "string",
                "format": "",
                "description": "CreationTimestamp is a timestamp representing the server time "
                "when this object was created.",
                "priority": 0,
            }
        )
    defs.extend(
        {
            "name": column.name,
            "type": column.type,
            "format": column.format,
            "description": column.description or column.name,
            "priority": column.priority,
        }
        for column in rt.columns
        if column.priority != 0
    )
    return defs
