"""Orphaning on delete: ``propagationPolicy: Orphan`` keeps the dependents and unlinks them.

Why this module exists: ``kubectl delete deployment web --cascade=orphan`` must leave the
Deployment's ReplicaSets (and their pods) running; upstream, the garbage collector honours the
``orphan`` finalizer by removing the owner's entry from every dependent's
``metadata.ownerReferences`` before the owner goes. kubefence's API server has no finalizers, so
it does that step itself, synchronously, before it deletes the owner: once the owner's DELETED
event is out, no dependent names it any more, and the garbage collector (which deletes a
dependent only under a resourceVersion precondition) cannot remove one from a stale cache.
``Foreground`` is served as ``Background`` (documented in docs/controllers.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kubefence.control.status import ApiError
from kubefence.errors import FieldError

if TYPE_CHECKING:
    from kubefence.control.objects import Objects, WriteOptions
    from kubefence.control.registry import ResourceType

__all__ = ["ORPHANING_MANAGER", "PROPAGATION_POLICIES", "orphan_dependents", "propagation_policy"]

Obj = dict[str, Any]
PROPAGATION_POLICIES = ("Orphan", "Background", "Foreground")
ORPHANING_MANAGER = "generic-garbage-collector"  # the field manager upstream's collector uses


def propagation_policy(body: Any, query: Mapping[str, str]) -> str:
    """The DeleteOptions' policy: the body's ``propagationPolicy`` (or the legacy
    ``orphanDependents``), else the query parameter; ``Background`` when none is given."""
    options = body if isinstance(body, dict) else {}
    policy = options.get("propagationPolicy") or query.get("propagationPolicy") or ""
    orphan = options.get("orphanDependents", query.get("orphanDependents"))
    if policy and orphan is not None:
        raise _invalid(policy, "orphanDependents and deletionPropagation cannot be both set")
    if orphan in (True, "true"):
        return "Orphan"
    if not policy:
        return "Background"
    if policy not in PROPAGATION_POLICIES:
        supported = ", ".join(f'"{p}"' for p in sorted(PROPAGATION_POLICIES))
        raise _invalid(policy, f'Unsupported value: "{policy}": supported values: {supported}')
    return str(policy)


def _invalid(policy: Any, message: str) -> ApiError:
    problem = FieldError(message, "propagationPolicy")
    return ApiError.invalid("DeleteOptions", "", [problem], group="meta.k8s.io")


async def orphan_dependents(
    objects: Objects, owner_type: ResourceType, owner: Obj, options: WriteOptions
) -> int:
    """Remove `owner` from the ownerReferences of every stored object that names its uid; the
    number of objects changed. A namespaced owner has dependents only in its namespace."""
    uid = owner["metadata"].get("uid")
    namespace = owner["metadata"].get("namespace", "") if owner_type.namespaced else ""
    changed = 0
    for rt in objects.registry.types:
        if not rt.stored or (namespace and not rt.namespaced):
            continue
        items, _, _ = await objects.list(rt, namespace)
        for dependent in items:
            if not _names(dependent, uid):
                continue
            if await _unlink(objects, rt, dependent, uid, options):
                changed += 1
    return changed


def _names(obj: Obj, uid: Any) -> bool:
    refs = obj.get("metadata", {}).get("ownerReferences") or ()
    return any(isinstance(ref, dict) and ref.get("uid") == uid for ref in refs)


async def _unlink(
    objects: Objects, rt: ResourceType, dependent: Obj, uid: Any, options: WriteOptions
) -> bool:
    """One dependent, retried on a conflicting concurrent write (a controller's status update)."""
    meta = dependent["metadata"]
    namespace, name = meta.get("namespace", ""), meta["name"]
    for _ in range(10):
        refs = [r for r in meta.get("ownerReferences") or () if r.get("uid") != uid]
        body = {**dependent, "metadata": {**meta, "ownerReferences": refs}}
        if not refs:
            del body["metadata"]["ownerReferences"]
        try:
            await objects.update(rt, namespace, name, body, options)
            return True
        except ApiError as error:
            if error.code == 404:
                return False
            if error.code != 409:
                raise
        dependent = await objects.get(rt, namespace, name)
        meta = dependent["metadata"]
        if not _names(dependent, uid):
            return False
    raise ApiError.conflict(rt.plural, name, group=rt.group)
