"""Bearer tokens end to end: `kubectl create token` (TokenRequest) issues a service-account JWT
the server accepts, RBAC applies to that service account; a static token file works too."""

from __future__ import annotations

import os
from pathlib import Path

from tests.control.conftest import Cluster, state_restored

from kubefence.control.cluster import cluster_down, cluster_up

REVIEW = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
SELF_REVIEW = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}


def _whoami(cluster: Cluster, token: str) -> tuple[int, object]:
    return cluster.request(
        "POST", REVIEW, SELF_REVIEW, client=None, headers={"Authorization": f"Bearer {token}"}
    )


def test_service_account_token_from_kubectl(cluster: Cluster) -> None:
    k = cluster.kubectl
    k("create", "namespace", "robots")
    k("create", "serviceaccount", "robot", "-n", "robots")
    token = k("create", "token", "robot", "-n", "robots").stdout.strip()
    assert token.count(".") == 2
    code, review = _whoami(cluster, token)
    assert code == 201, review
    assert isinstance(review, dict)
    info = review["status"]["userInfo"]
    assert info["username"] == "system:serviceaccount:robots:robot"
    assert "system:serviceaccounts:robots" in info["groups"]
    headers = {"Authorization": f"Bearer {token}"}
    code, _ = cluster.request("GET", "/api/v1/namespaces/robots/pods", client=None, headers=headers)
    assert code == 403
    k("create", "rolebinding", "robot-view", "--clusterrole=view",
      "--serviceaccount=robots:robot", "-n", "robots")  # fmt: skip
    code, _ = cluster.request("GET", "/api/v1/namespaces/robots/pods", client=None, headers=headers)
    assert code == 200
    short = k("create", "token", "robot", "-n", "robots", "--duration=1m", check=False)
    assert short.returncode != 0
    assert "may not specify a duration less than 10 minutes" in short.stderr
    k("delete", "serviceaccount", "robot", "-n", "robots")
    assert _whoami(cluster, token)[0] == 401  # the account's tokens die with it


def test_static_token_file(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.csv"
    tokens.write_text('s3cret-token,carol,1001,"ops,dev"\n')
    with state_restored():
        try:
            os.environ["KUBEFENCE_STATE"] = str(tmp_path)
            info = cluster_up("tok", token_file=tokens)
            running = Cluster(info, info.directory / "kubeconfig", tmp_path / "cache")
            code, review = _whoami(running, "s3cret-token")
            assert code == 201
            assert isinstance(review, dict)
            assert review["status"]["userInfo"]["username"] == "carol"
            assert {"ops", "dev"} <= set(review["status"]["userInfo"]["groups"])
            assert _whoami(running, "wrong-token")[0] == 401
        finally:
            cluster_down("tok")
