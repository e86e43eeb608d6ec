"""Node restriction: a node's credentials may change only its own Node, Lease and pods.

Why this module exists: RBAC gives every member of ``system:nodes`` the same rights (the
``system:node`` ClusterRole: update nodes, leases, pods/status ...), so without a further check
one node could mark another NotReady or rewrite any pod's status. Like kube-apiserver's
NodeRestriction admission plugin, this check runs after RBAC on writes by a user
``system:node:<name>`` in group ``system:nodes``:

* ``nodes`` and ``nodes/status``: only the Node named ``<name>`` (create included);
* ``leases`` in ``coordination.k8s.io``: only ``kube-node-lease/<name>``;
* ``pods/status`` updates and pod deletions: only pods whose ``spec.nodeName`` is ``<name>``;
  creating pods (mirror pods) is refused, since sandbox nodes have no static pods.

Reads and other resources are left to RBAC. Denials are ``403 Forbidden`` with upstream's
wording.
"""

from __future__ import annotations

from typing import Any

from kubefence.control.identity import NODES_GROUP, UserInfo
from kubefence.control.objects import Objects
from kubefence.control.registry import ResourceType
from kubefence.control.status import ApiError

__all__ = ["requesting_node", "restrict_node"]

_PREFIX = "system:node:"
_READS = ("get", "list", "watch")


def requesting_node(user: UserInfo) -> str | None:
    """The node a user acts for (``system:node:<name>`` in ``system:nodes``), else None."""
    if user.name.startswith(_PREFIX) and NODES_GROUP in user.groups:
        return user.name[len(_PREFIX) :]
    return None


def _forbidden(message: str) -> ApiError:
    return ApiError(403, "Forbidden", message)


def _body_name(body: Any) -> str:
    if isinstance(body, dict):
        metadata = body.get("metadata")
        if isinstance(metadata, dict):
            return str(metadata.get("name") or "")
    return ""


async def restrict_node(
    objects: Objects,
    user: UserInfo,
    rt: ResourceType,
    *,
    verb: str,
    namespace: str,
    name: str,
    subresource: str,
    body: Any,
) -> None:
    """Raise ``403`` when a node's write reaches beyond its own objects."""
    node = requesting_node(user)
    if node is None or verb in _READS:
        return
    target = name or _body_name(body)
    if rt.group == "" and rt.plural == "nodes":
        if target != node:
            raise _forbidden(f'node "{node}" is not allowed to modify node "{target}"')
    elif rt.group == "coordination.k8s.io" and rt.plural == "leases":
        if namespace != "kube-node-lease" or target != node:
            raise _forbidden(
                f'node "{node}" can only access node lease with the same name as the '
                "requesting node"
            )
    elif rt.group == "" and rt.plural == "pods":
        if verb == "create" and not subresource:
            raise _forbidden(
                f'node "{node}" can not create pods (sandbox nodes have no static pods)'
            )
        if subresource in ("status", "") and verb in ("update", "patch", "delete"):
            pod = await objects.get(rt, namespace, target)
            bound = str((pod.get("spec") or {}).get("nodeName") or "")
            if bound != node:
                action = "update pod status" if subresource == "status" else "delete pods"
                raise _forbidden(
                    f'node "{node}" can only {action} for pods with spec.nodeName set to itself'
                )
