"""Server-side apply's field ownership: pruning what a manager stopped applying, conflicts.

Why a module of its own: `objects.py` runs the write paths; these two rules decide, from the
managedFields of the current and the patched object, which fields an apply removes and whether
it collides with another manager (409 Conflict with one cause per field, or, with force, the
fields change hands). The field-set algebra itself is in `patch.py`.
"""

from __future__ import annotations

from typing import Any

from kubefence.control.patch import (
    apply_conflicts,
    dotted,
    fields_v1,
    prune_unapplied,
    union_fields,
    without_paths,
)
from kubefence.control.registry import ResourceType
from kubefence.control.status import ApiError, Cause

__all__ = ["check_apply_conflicts", "prune_for_apply"]

Obj = dict[str, Any]


def prune_for_apply(patched: Obj, current: Obj, applied: Obj, manager: str) -> None:
    """Remove what `manager` applied before but applies no longer (unless others own it)."""
    entries = current.get("metadata", {}).get("managedFields") or []
    mine = [e for e in entries if e.get("manager") == manager and e.get("operation") == "Apply"]
    if not mine:
        return
    others = union_fields([e.get("fieldsV1") or {} for e in entries if e not in mine])
    wanted = {"f:metadata": {}, **fields_v1(applied)}  # metadata itself is never removed
    prune_unapplied(patched, mine[0].get("fieldsV1") or {}, wanted, others)


def check_apply_conflicts(
    rt: ResourceType, patched: Obj, current: Obj, applied: Obj, manager: str, *, force: bool
) -> None:
    """409 when the apply changes fields another manager owns; with force, take them over."""
    entries = patched.get("metadata", {}).get("managedFields") or []
    wanted = fields_v1(applied)
    found: list[tuple[str, tuple[str, ...]]] = []
    for entry in entries:
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            continue
        for path in apply_conflicts(wanted, entry.get("fieldsV1") or {}, current, patched):
            found.append((str(entry.get("manager", "")), path))
    if not found:
        return
    if force:
        for entry in entries:
            taken = [path for owner, path in found if owner == entry.get("manager")]
            if taken:
                entry["fieldsV1"] = without_paths(entry.get("fieldsV1") or {}, taken)
        return
    causes = [
        Cause(
            reason="FieldManagerConflict",
            field=dotted(path),
            message=f'conflict with "{owner}" using {rt.group_version}',
        )
        for owner, path in found
    ]
    listed = "\n".join(f"- {c.message}: {c.field}" for c in causes)
    raise ApiError(
        409,
        "Conflict",
        f"Apply failed with {len(causes)} conflict{'s' if len(causes) != 1 else ''}:\n{listed}",
        kind=rt.plural,
        name=str(current.get("metadata", {}).get("name", "")),
        group=rt.group,
        causes=causes,
    )
