"""The walk-through with the real kubectl against `kubefence cluster up`'s API server."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.control.conftest import KUBECTL, Cluster

TUTORIAL = Path(__file__).resolve().parents[2] / "examples" / "tutorial"


def test_the_walk_through(cluster: Cluster) -> None:
    k = cluster.kubectl
    assert k("create", "namespace", "test").stdout.strip() == "namespace/test created"
    ran = k("run", "nginx", "--image=nginx", "--labels", "app=nginx", "--namespace", "test",
            "--expose", "--port", "80").stdout.split("\n")  # fmt: skip
    assert sorted(line for line in ran if line) == ["pod/nginx created", "service/nginx created"]

    everything = k("get", "all", "-n", "test").stdout
    assert "pod/nginx" in everything
    assert "service/nginx" in everything
    assert "ClusterIP" in everything
    assert "198.19." in everything  # service addresses come from the test range

    described = k("describe", "pod", "nginx", "-n", "test").stdout
    assert "Namespace:        test" in described
    assert "app=nginx" in described
    assert "Events:" in described
    uid = k("get", "pod", "nginx", "-n", "test", "-o", "jsonpath={.metadata.uid}").stdout
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "nginx.1", "namespace": "test"},
        "involvedObject": {"kind": "Pod", "name": "nginx", "namespace": "test", "uid": uid},
        "reason": "Scheduled",
        "message": "assigned test/nginx to node-1",
        "type": "Normal",
        "source": {"component": "default-scheduler"},
    }
    k("create", "-f", "-", input=json.dumps(event))
    described = k("describe", "pod", "nginx", "-n", "test").stdout
    assert "assigned test/nginx to node-1" in described.split("Events:")[1]
    header = k("get", "events", "-n", "test").stdout.splitlines()[0].split()
    assert header[:3] == ["LAST", "SEEN", "TYPE"]

    policy = str(TUTORIAL / "deny-all-policy.yaml")
    assert k("apply", "-f", policy).stdout.strip() == (
        "networkpolicy.networking.k8s.io/deny-all-policy created"
    )
    assert k("apply", "-f", policy).stdout.strip() == (
        "networkpolicy.networking.k8s.io/deny-all-policy unchanged"
    )
    listed = k("get", "netpol", "-n", "test").stdout
    assert "deny-all-policy" in listed
    assert "app=nginx" in listed
    types = k("get", "networkpolicy", "deny-all-policy", "-n", "test",
              "-o", "jsonpath={.spec.policyTypes}").stdout  # fmt: skip
    assert types == '["Ingress"]'

    deleted = k("delete", "networkpolicy", "deny-all-policy", "-n", "test").stdout
    assert 'networkpolicy.networking.k8s.io "deny-all-policy" deleted' in deleted
    assert 'service "nginx" deleted' in k("delete", "service", "--all", "-n", "test").stdout
    assert 'pod "nginx" deleted' in k("delete", "pod", "--all", "-n", "test").stdout
    assert "No resources found" in k("get", "all", "-n", "test").stderr


def test_label_wide_output_and_short_names(cluster: Cluster) -> None:
    k = cluster.kubectl
    k("create", "namespace", "lbl")
    k("run", "web", "--image=nginx:1.27", "-n", "lbl")
    assert k("label", "pod", "web", "-n", "lbl", "tier=front").stdout.strip() == "pod/web labeled"
    shown = k("get", "po", "-n", "lbl", "--show-labels", "-l", "tier=front").stdout
    assert "tier=front" in shown
    wide = k("get", "pods", "-n", "lbl", "-o", "wide").stdout.splitlines()[0].split()
    assert wide[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert "NODE" in wide
    assert k("get", "svc", "-n", "lbl").stderr.startswith("No resources found")
    assert "default" in k("get", "sa", "-n", "lbl").stdout  # the default ServiceAccount


def test_get_watch_sees_a_change(cluster: Cluster) -> None:
    k = cluster.kubectl
    k("create", "namespace", "w")
    k("run", "one", "--image=nginx", "-n", "w")
    env = {"KUBECONFIG": str(cluster.kubeconfig), "KUBECACHEDIR": str(cluster.cache)}
    watcher = subprocess.Popen(
        [str(KUBECTL), "get", "pods", "-n", "w", "-w", "--request-timeout=0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        time.sleep(1.0)
        k("run", "two", "--image=nginx", "-n", "w")
        time.sleep(1.0)
    finally:
        watcher.terminate()
        out, _ = watcher.communicate(timeout=10)
    names = [line.split()[0] for line in out.splitlines()[1:] if line.strip()]
    assert names[:1] == ["one"]
    assert "two" in names


def test_server_side_apply_diff_and_explain(cluster: Cluster) -> None:
    k = cluster.kubectl
    k("create", "namespace", "ssa")
    manifest = (
        (TUTORIAL / "allow-policy.yaml").read_text().replace("namespace: test", "namespace: ssa")
    )
    applied = k("apply", "--server-side", "-f", "-", input=manifest).stdout
    assert "serverside-applied" in applied
    fields = "jsonpath={.items[0].metadata.managedFields[*].manager}"
    managers = k("get", "netpol", "-n", "ssa", "-o", fields,
                 "--show-managed-fields").stdout  # fmt: skip
    assert "kubectl" in managers
    same = k("diff", "--server-side", "-f", "-", input=manifest, check=False)
    assert same.returncode == 0, same.stderr
    changed = k(
        "diff",
        "--server-side",
        "-f",
        "-",
        input=manifest.replace("app: nginx", "app: other"),
        check=False,
    )
    assert changed.returncode == 1, changed.stderr
    assert "+      app: other" in changed.stdout
    labelled = manifest.replace("  namespace: ssa\n", "  namespace: ssa\n  labels: {team: a}\n")
    k("apply", "--server-side", "-f", "-", input=labelled)
    labels = "jsonpath={.metadata.labels}"
    assert k("get", "netpol", "allow-policy", "-n", "ssa", "-o", labels).stdout == '{"team":"a"}'
    k("apply", "--server-side", "-f", "-", input=manifest)  # the label is no longer applied
    assert k("get", "netpol", "allow-policy", "-n", "ssa", "-o", labels).stdout == ""
    other = manifest.replace("name: allow-policy", "name: taken")
    k("create", "-f", "-", input=other)  # kubectl-create owns every field
    changed_value = other.replace("app: nginx", "app: mine")
    refused = k("apply", "--server-side", "-f", "-", input=changed_value, check=False)
    assert refused.returncode != 0
    assert 'conflict with "kubectl-create"' in refused.stderr
    assert ".spec.podSelector.matchLabels.app" in refused.stderr
    forced = k("apply", "--server-side", "--force-conflicts", "-f", "-", input=changed_value)
    assert "serverside-applied" in forced.stdout
    explained = k("explain", "networkpolicy.spec").stdout
    assert "podSelector" in explained
    assert "policyTypes" in explained


def test_auth_can_i_whoami_and_cluster_info(cluster: Cluster) -> None:
    k = cluster.kubectl
    assert k("auth", "can-i", "create", "pods", "--all-namespaces").stdout.strip() == "yes"
    assert "kubefence:admin" in k("auth", "whoami").stdout
    k("create", "namespace", "team")
    k("create", "role", "reader", "--verb=get,list", "--resource=pods", "-n", "team")
    k("create", "rolebinding", "alice-reads", "--role=reader", "--user=alice", "-n", "team")

    def can(*args: str) -> str:
        return k("auth", "can-i", *args, check=False).stdout.strip()

    assert can("list", "pods", "-n", "team", "--as", "alice") == "yes"
    assert can("delete", "pods", "-n", "team", "--as", "alice") == "no"
    assert can("list", "pods", "-n", "default", "--as", "alice") == "no"
    impersonated = k("auth", "can-i", "get", "pods", "--as", "system:anonymous", check=False)
    assert impersonated.returncode != 0
    assert 'User "system:anonymous" cannot create resource "selfsubjectaccessreviews"' in (
        impersonated.stderr
    )
    info = k("cluster-info").stdout
    assert f"Kubernetes control plane is running at https://127.0.0.1:{cluster.port}" in info


def test_deployment_scale_and_api_resources(cluster: Cluster) -> None:
    k = cluster.kubectl
    k("create", "namespace", "apps")
    assert k("create", "deployment", "web", "--image=nginx", "-n", "apps").stdout.strip() == (
        "deployment.apps/web created"
    )
    assert k("scale", "deployment", "web", "--replicas=3", "-n", "apps").stdout.strip() == (
        "deployment.apps/web scaled"
    )
    replicas = k("get", "deploy", "web", "-n", "apps", "-o", "jsonpath={.spec.replicas}").stdout
    assert replicas == "3"
    resources = k("api-resources").stdout
    assert "networkpolicies" in resources
    assert "netpol" in resources


def test_auth_can_i_list_shows_the_rules_rbac_grants(cluster: Cluster) -> None:
    k = cluster.kubectl
    k("create", "namespace", "rules")
    k("create", "serviceaccount", "reader", "-n", "rules")
    k("create", "rolebinding", "reader-view", "--clusterrole=view",
      "--serviceaccount=rules:reader", "-n", "rules")  # fmt: skip
    reader = "system:serviceaccount:rules:reader"

    listed = k("auth", "can-i", "--list", "-n", "rules", "--as", reader).stdout
    rows = {
        line.split()[0]: line[line.rindex("[") :]
        for line in listed.splitlines()[1:]
        if line[:1] != " "
    }
    assert rows["networkpolicies.networking.k8s.io"] == "[get list watch]"
    assert rows["pods"] == "[get list watch]"
    assert rows["selfsubjectrulesreviews.authorization.k8s.io"] == "[create]"  # basic-user
    assert "*.*" not in rows
    assert "secrets" not in rows  # view does not read secrets
    elsewhere = k("auth", "can-i", "--list", "-n", "default", "--as", reader).stdout
    assert "networkpolicies.networking.k8s.io" not in elsewhere  # the binding is namespaced

    admin = k("auth", "can-i", "--list", "-n", "rules").stdout
    assert admin.splitlines()[1].split() == ["*.*", "[]", "[]", "[*]"]  # cluster-admin

    code, review = cluster.request(
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectRulesReview",
            "spec": {"namespace": "rules"},
        },
    )
    assert code == 201
    assert review["kind"] == "SelfSubjectRulesReview"
    assert review["status"]["incomplete"] is False
    assert {"verbs": ["*"], "nonResourceURLs": ["*"]} in review["status"]["nonResourceRules"]
    code, _ = cluster.request(
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": {}},
        client=None,
    )
    assert code == 403  # anonymous is not system:basic-user
