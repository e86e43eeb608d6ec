"""In-memory copies of the objects that every request consults: RBAC objects (for the
authorizer) and ServiceAccounts (a deleted account's tokens stop working at once).

Why in memory: authorization and token checks are synchronous and run on every request; this
server is the only writer of its store, so its own writes (`on_write`, called by `Objects`
after each commit) keep the copies exact. They are filled from the store at start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kubefence.control.registry import ResourceType

__all__ = ["CACHED_KINDS", "ObjectCache"]

Obj = dict[str, Any]
CACHED_KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "ServiceAccount")


class ObjectCache:
    """Objects of CACHED_KINDS by (namespace, name), with a generation bumped on RBAC writes."""

    def __init__(self) -> None:
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {k: {} for k in CACHED_KINDS}
        self._rbac_generation = 0

    def list_objects(self, kind: str) -> Iterable[Mapping[str, Any]]:
        """What the Authorizer reads (a snapshot)."""
        return list(self._objects.get(kind, {}).values())

    def rbac_generation(self) -> int:
        """Changes whenever an RBAC object changes (the Authorizer's rebuild signal)."""
        return self._rbac_generation

    def service_account_exists(self, namespace: str, name: str, uid: str) -> bool:
        """Token verification's lookup: the account exists (with that uid, when given)."""
        account = self._objects["ServiceAccount"].get((namespace, name))
        return account is not None and (not uid or account["metadata"].get("uid") == uid)

    def on_write(self, rt: ResourceType, obj: Obj, deleted: bool) -> None:
        bucket = self._objects.get(rt.kind)
        if bucket is None:
            return
        meta = obj.get("metadata", {})
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        if deleted:
            bucket.pop(key, None)
        else:
            bucket[key] = obj
        if rt.group == "rbac.authorization.k8s.io":
            self._rbac_generation += 1
