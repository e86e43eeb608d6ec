"""Node restriction: with its own certificate a node may write only its own Node, its Lease in
kube-node-lease and the status of pods bound to it (RBAC alone would let it write any)."""

from __future__ import annotations

import http.client
import json
import ssl
from pathlib import Path
from typing import Any

from tests.control.conftest import Cluster

from kubefence.control.pki import issue_client_cert


def _as_node(cluster: Cluster, tmp_path: Path, node: str) -> Any:
    cert, key = tmp_path / f"{node}.crt", tmp_path / f"{node}.key"
    issue_client_cert(cluster.pki, user=f"system:node:{node}", groups=("system:nodes",),
                      cert_path=cert, key_path=key)  # fmt: skip
    context = ssl.create_default_context(cafile=str(cluster.pki.ca_cert))
    context.load_cert_chain(cert, key)

    def request(
        method: str, path: str, body: Any = None, *, merge: bool = False
    ) -> tuple[int, Any]:
        connection = http.client.HTTPSConnection("127.0.0.1", cluster.port, context=context)
        kind = "application/merge-patch+json" if merge else "application/json"
        try:
            connection.request(method, path, body=None if body is None else json.dumps(body),
                               headers={"Content-Type": kind})  # fmt: skip
            answer = connection.getresponse()
            return answer.status, json.loads(answer.read() or b"{}")
        finally:
            connection.close()

    return request


def _node(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}


def test_a_node_writes_only_its_own_node_lease_and_pods(cluster: Cluster, tmp_path: Path) -> None:
    alpha = _as_node(cluster, tmp_path, "alpha")
    beta = _as_node(cluster, tmp_path, "beta")
    assert alpha("POST", "/api/v1/nodes", _node("alpha"))[0] == 201
    assert beta("POST", "/api/v1/nodes", _node("beta"))[0] == 201
    code, status = alpha("POST", "/api/v1/nodes", _node("gamma"))
    assert (code, status["message"]) == (403, 'node "alpha" is not allowed to modify node "gamma"')
    ready = {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    assert alpha("PATCH", "/api/v1/nodes/beta/status", ready, merge=True)[0] == 403
    assert alpha("PATCH", "/api/v1/nodes/alpha/status", ready, merge=True)[0] == 200
    assert alpha("DELETE", "/api/v1/nodes/beta")[0] == 403
    assert alpha("GET", "/api/v1/nodes/beta")[0] == 200  # reads stay RBAC's business

    leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
    cluster.request("POST", "/api/v1/namespaces", {"metadata": {"name": "kube-node-lease"}})
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "alpha"}, "spec": {"holderIdentity": "alpha"}}  # fmt: skip
    assert alpha("POST", leases, lease)[0] == 201
    code, status = beta("PATCH", f"{leases}/alpha", {"spec": {"holderIdentity": "beta"}},
                        merge=True)  # fmt: skip
    assert code == 403
    assert "same name as the requesting node" in status["message"]

    cluster.request("POST", "/api/v1/namespaces", {"metadata": {"name": "nr"}})
    spec = {"nodeName": "alpha", "containers": [{"name": "c", "image": "nginx"}]}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "nr"},
           "spec": spec}  # fmt: skip
    assert cluster.request("POST", "/api/v1/namespaces/nr/pods", pod)[0] == 201
    running = {"status": {"phase": "Running"}}
    path = "/api/v1/namespaces/nr/pods/p/status"
    code, status = beta("PATCH", path, running, merge=True)
    assert (code, status["message"]) == (
        403,
        'node "beta" can only update pod status for pods with spec.nodeName set to itself',
    )
    assert alpha("PATCH", path, running, merge=True)[0] == 200
    mirror = {**pod, "metadata": {"name": "q"}}
    assert alpha("POST", "/api/v1/namespaces/nr/pods", mirror)[0] == 403
    assert beta("DELETE", "/api/v1/namespaces/nr/pods/p")[0] == 403
    assert alpha("DELETE", "/api/v1/namespaces/nr/pods/p")[0] == 200
