"""Who is asking and what for: the two values every control-plane security decision reads.

Authentication (``authn``) turns credentials into a :class:`UserInfo`; the API server turns the
HTTP request into :class:`RequestAttributes`; authorization (``rbac``) decides on the pair. Keeping
them in their own small module lets the server, authn and rbac depend on these shapes without
depending on each other.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ADMIN_USER",
    "AGENT_USER",
    "ANONYMOUS",
    "AUTHENTICATED_GROUP",
    "CONTROLLER_MANAGER_USER",
    "MASTERS_GROUP",
    "NODES_GROUP",
    "RequestAttributes",
    "UserInfo",
    "node_user",
]

# The well-known names the PKI writes into certificates and the bootstrap RBAC objects bind.
AUTHENTICATED_GROUP = "system:authenticated"
MASTERS_GROUP = "system:masters"  # bound to cluster-admin
NODES_GROUP = "system:nodes"
ADMIN_USER = "kubefence:admin"
AGENT_USER = "kubefence:agent"  # the policy agent, bound to the kubefence:agent ClusterRole
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"  # scheduler + controllers (one process)


def node_user(node: str) -> str:
    """The user name a node's client certificate carries (as kubelets use)."""
    return f"system:node:{node}"


@dataclass(frozen=True, slots=True)
class UserInfo:
    """An authenticated (or anonymous) user: name, groups and an optional uid."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""


ANONYMOUS = UserInfo("system:anonymous", ("system:unauthenticated",))


@dataclass(frozen=True, slots=True)
class RequestAttributes:
    """What a request does, in the terms RBAC rules are written in.

    ``verb`` is one of get list watch create update patch delete deletecollection for resource
    requests, or the lowercased HTTP method for non-resource requests (``resource == ""``), whose
    URL path is in ``path``. ``api_group`` is ``""`` for the core group.
    """

    user: UserInfo
    verb: str
    namespace: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""

    @property
    def is_resource_request(self) -> bool:
        """True for a request on an API resource, False for a plain URL path like ``/healthz``."""
        return self.resource != ""
