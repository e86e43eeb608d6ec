"""Workloads through the real kubectl: Deployments (scale, rollout, delete), StatefulSets,
DaemonSets, garbage collection. Same set-up as ``test_controllers`` (fake nodes with Leases, a
stand-in kubelet that marks pods of chosen namespaces Running and Ready)."""

from __future__ import annotations

import json
import time

from tests.control.test_controllers import Controllers, ctl, wait_for

__all__ = ["ctl"]


def _deployment(name: str, replicas: int, *, image: str = "nginx:1.27") -> str:
    return json.dumps({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": image,
                                         "ports": [{"containerPort": 80}]}]},
            },
        },
    })  # fmt: skip


def _names(ctl: Controllers, ns: str, selector: str = "") -> list[str]:
    return [p["metadata"]["name"] for p in ctl.pods(ns, selector)]


def test_deployment_makes_owned_pods_scales_and_reports_ready(ctl: Controllers) -> None:
    ns = ctl.namespace("deploy")
    ctl.kubectl("apply", "-n", ns, "-f", "-", input=_deployment("web", 3))
    pods = wait_for(lambda: len(ctl.pods(ns)) == 3 and ctl.pods(ns), what="3 pods")
    rs_list = json.loads(ctl.kubectl("get", "rs", "-n", ns, "-o", "json").stdout)["items"]
    assert len(rs_list) == 1
    rs = rs_list[0]
    digest = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{digest}"
    assert rs["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    assert rs["metadata"]["ownerReferences"][0]["controller"] is True
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    for pod in pods:
        owner = pod["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["uid"]) == (
            "ReplicaSet",
            rs["metadata"]["name"],
            rs["metadata"]["uid"],
        )
        assert pod["metadata"]["name"].startswith(f"web-{digest}-")
        assert len(pod["metadata"]["name"]) == len(f"web-{digest}-") + 5
        assert pod["metadata"]["labels"]["pod-template-hash"] == digest
    # not ready yet: READY 0/3; the stand-in kubelet runs them: READY 3/3, rollout status ok
    assert "0/3" in ctl.kubectl("get", "deploy", "web", "-n", ns).stdout
    ctl.nodes.ready_namespaces.add(ns)
    status = ctl.kubectl("rollout", "status", "deploy/web", "-n", ns, "--timeout=30s")
    assert 'deployment "web" successfully rolled out' in status.stdout
    wait_for(lambda: "3/3" in ctl.kubectl("get", "deploy", "web", "-n", ns).stdout, what="3/3")
    table = ctl.kubectl("get", "deploy", "web", "-n", ns).stdout.splitlines()[1].split()
    assert table[1:4] == ["3/3", "3", "3"]  # READY, UP-TO-DATE, AVAILABLE
    # what happened is told in Events, as upstream's controllers tell it
    rs_name = rs["metadata"]["name"]
    wait_for(lambda: f"Scaled up replica set {rs_name} from 0 to 3" in ctl.kubectl(
        "describe", "deploy", "web", "-n", ns).stdout, what="ScalingReplicaSet event")  # fmt: skip
    wait_for(lambda: f"Created pod: {pods[0]['metadata']['name']}" in ctl.kubectl(
        "describe", "rs", rs_name, "-n", ns).stdout, what="SuccessfulCreate event")  # fmt: skip
    pod_name = pods[0]["metadata"]["name"]
    wait_for(lambda: f"Successfully assigned {ns}/{pod_name} to node-" in ctl.kubectl(
        "describe", "pod", pod_name, "-n", ns).stdout, what="Scheduled event")  # fmt: skip
    ctl.kubectl("scale", "deploy/web", "-n", ns, "--replicas=5")
    wait_for(lambda: len(ctl.pods(ns)) == 5, what="5 pods")
    ctl.kubectl("rollout", "status", "deploy/web", "-n", ns, "--timeout=30s")
    ctl.kubectl("scale", "deploy/web", "-n", ns, "--replicas=1")
    wait_for(lambda: len(ctl.pods(ns)) == 1, what="1 pod")
    wait_for(lambda: "1/1" in ctl.kubectl("get", "deploy", "web", "-n", ns).stdout, what="1/1")
    # delete: the ReplicaSet and the pods follow (garbage collection by owner references)
    ctl.kubectl("delete", "deploy", "web", "-n", ns)
    wait_for(lambda: not ctl.pods(ns), what="pods gone")
    wait_for(lambda: "No resources" in ctl.kubectl("get", "rs", "-n", ns).stderr, what="rs gone")
    ctl.kubectl("delete", "namespace", ns, "--wait=false")


def test_rolling_update_replaces_pods_and_keeps_history(ctl: Controllers) -> None:
    ns = ctl.namespace("rollout")
    ctl.nodes.ready_namespaces.add(ns)
    ctl.kubectl("apply", "-n", ns, "-f", "-", input=_deployment("api", 4))
    ctl.kubectl("rollout", "status", "deploy/api", "-n", ns, "--timeout=30s")
    first = set(_names(ctl, ns))
    ctl.kubectl("set", "image", "deploy/api", "-n", ns, "web=nginx:1.28")
    done = ctl.kubectl("rollout", "status", "deploy/api", "-n", ns, "--timeout=60s")
    assert "successfully rolled out" in done.stdout
    pods = wait_for(lambda: len(ctl.pods(ns)) == 4 and ctl.pods(ns), what="4 new pods")
    assert not first & {p["metadata"]["name"] for p in pods}
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:1.28"}
    sets = json.loads(ctl.kubectl("get", "rs", "-n", ns, "-o", "json").stdout)["items"]
    by_revision = {
        s["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: s for s in sets
    }
    assert sorted(by_revision) == ["1", "2"]
    assert by_revision["1"]["spec"]["replicas"] == 0
    assert by_revision["2"]["spec"]["replicas"] == 4
    history = ctl.kubectl("rollout", "history", "deploy/api", "-n", ns).stdout
    assert "1" in history
    assert "2" in history
    # undo: the first ReplicaSet is current again, as revision 3
    ctl.kubectl("rollout", "undo", "deploy/api", "-n", ns)
    ctl.kubectl("rollout", "status", "deploy/api", "-n", ns, "--timeout=60s")
    pods = wait_for(
        lambda: (
            len(p := ctl.pods(ns)) == 4
            and {x["spec"]["containers"][0]["image"] for x in p} == {"nginx:1.27"}
            and p
        ),
        what="4 pods back on nginx:1.27",
    )
    assert {p["metadata"]["labels"]["pod-template-hash"] for p in pods} == {
        by_revision["1"]["metadata"]["labels"]["pod-template-hash"]
    }
    sets = json.loads(ctl.kubectl("get", "rs", "-n", ns, "-o", "json").stdout)["items"]
    revisions = {
        s["metadata"]["name"]: s["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        for s in sets
    }
    assert revisions == {by_revision["1"]["metadata"]["name"]: "3",
                         by_revision["2"]["metadata"]["name"]: "2"}  # fmt: skip
    ctl.kubectl("delete", "namespace", ns, "--wait=false")


def test_recreate_strategy_removes_old_pods_first(ctl: Controllers) -> None:
    ns = ctl.namespace("recreate")
    ctl.nodes.ready_namespaces.add(ns)
    manifest = json.loads(_deployment("db", 2))
    manifest["spec"]["strategy"] = {"type": "Recreate"}
    ctl.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest))
    ctl.kubectl("rollout", "status", "deploy/db", "-n", ns, "--timeout=30s")
    ctl.kubectl("set", "image", "deploy/db", "-n", ns, "web=nginx:1.28")
    ctl.kubectl("rollout", "status", "deploy/db", "-n", ns, "--timeout=60s")
    pods = wait_for(lambda: len(ctl.pods(ns)) == 2 and ctl.pods(ns), what="2 pods")
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:1.28"}
    ctl.kubectl("delete", "namespace", ns, "--wait=false")


def _statefulset(name: str, replicas: int) -> str:
    return json.dumps({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "db", "image": "agnhost"}]}},
        },
    })  # fmt: skip


def test_statefulset_pods_come_in_order_with_stable_names(ctl: Controllers) -> None:
    ns = ctl.namespace("sts")
    ctl.kubectl("apply", "-n", ns, "-f", "-", input=_statefulset("db", 3))
    wait_for(lambda: _names(ctl, ns) == ["db-0"], what="db-0")
    pod = ctl.pods(ns)[0]
    assert pod["spec"]["hostname"] == "db-0"
    assert pod["spec"]["subdomain"] == "db"
    assert pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "db-0"
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
    wait_for(lambda: pod["spec"].get("nodeName") or ctl.pods(ns)[0]["spec"].get("nodeName"))
    # OrderedReady: db-1 only once db-0 is Running and Ready
    assert _names(ctl, ns) == ["db-0"]
    ctl.nodes.run_pod(ctl.pods(ns)[0])
    wait_for(lambda: _names(ctl, ns) == ["db-0", "db-1"], what="db-1")
    ctl.nodes.ready_namespaces.add(ns)
    status = ctl.kubectl("rollout", "status", "sts/db", "-n", ns, "--timeout=30s")
    # upstream defaults partition to 0, so kubectl reports a (trivially) partitioned roll out
    assert "partitioned roll out complete: 3 new pods have been updated" in status.stdout
    assert _names(ctl, ns) == ["db-0", "db-1", "db-2"]
    assert "3/3" in ctl.kubectl("get", "sts", "db", "-n", ns).stdout
    ctl.kubectl("scale", "sts/db", "-n", ns, "--replicas=1")
    wait_for(lambda: _names(ctl, ns) == ["db-0"], what="scaled down to db-0")
    ctl.kubectl("delete", "sts", "db", "-n", ns)
    wait_for(lambda: not ctl.pods(ns), what="pods gone")
    ctl.kubectl("delete", "namespace", ns, "--wait=false")


def test_daemonset_runs_one_pod_per_ready_node(ctl: Controllers) -> None:
    ns = ctl.namespace("ds")
    ctl.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                         "spec": {"containers": [{"name": "a", "image": "agnhost"}]}},
        },
    }))  # fmt: skip
    bound = wait_for(
        lambda: sorted(p["spec"].get("nodeName") or "" for p in ctl.pods(ns)) == [
            "node-a", "node-b", "node-c"] and ctl.pods(ns),
        what="one daemon pod per node",
    )  # fmt: skip
    for pod in bound:
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
        assert pod["metadata"]["name"].startswith("agent-")
    ctl.nodes.ready_namespaces.add(ns)
    ctl.kubectl("rollout", "status", "ds/agent", "-n", ns, "--timeout=30s")
    row = ctl.kubectl("get", "ds", "agent", "-n", ns).stdout.splitlines()[1].split()
    assert row[1:6] == ["3", "3", "3", "3", "3"]  # DESIRED CURRENT READY UP-TO-DATE AVAILABLE
    # a new node gets one; a removed node's pod goes
    ctl.nodes.add("node-d", 4)
    try:
        wait_for(lambda: "node-d" in {p["spec"].get("nodeName") for p in ctl.pods(ns)},
                 what="pod on node-d")  # fmt: skip
        assert len(ctl.pods(ns)) == 4
    finally:
        ctl.nodes.remove("node-d")
    wait_for(lambda: len(ctl.pods(ns)) == 3, what="node-d's pod removed")
    ctl.kubectl("delete", "ds", "agent", "-n", ns)
    wait_for(lambda: not ctl.pods(ns), what="pods gone")
    ctl.kubectl("delete", "namespace", ns, "--wait=false")


def test_kubectl_create_deployment_pods_are_defaulted(ctl: Controllers) -> None:
    """kubectl create sends protobuf, where Go encodes every empty string; the pods the
    controllers make from that template must still get the API's defaults."""
    ns = ctl.namespace("created")
    ctl.kubectl("create", "deployment", "plain", "-n", ns, "--image=nginx:1.27", "--replicas=2")
    pods = wait_for(lambda: len(p := ctl.pods(ns)) == 2 and p, what="2 pods")
    for pod in pods:
        spec = pod["spec"]
        assert spec["restartPolicy"] == "Always"
        assert spec["dnsPolicy"] == "ClusterFirst"
        assert spec["schedulerName"] == "default-scheduler"
        assert spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    ctl.kubectl("delete", "namespace", ns, "--wait=false")


def test_a_rollout_replaced_mid_flight_still_completes(ctl: Controllers) -> None:
    ns = ctl.namespace("midflight")
    ctl.nodes.ready_namespaces.add(ns)
    ctl.kubectl("apply", "-n", ns, "-f", "-", input=_deployment("svc", 4))
    ctl.kubectl("rollout", "status", "deploy/svc", "-n", ns, "--timeout=30s")
    ctl.kubectl("set", "image", "deploy/svc", "-n", ns, "web=nginx:1.28")
    ctl.kubectl("set", "image", "deploy/svc", "-n", ns, "web=nginx:1.29")
    ctl.kubectl("rollout", "status", "deploy/svc", "-n", ns, "--timeout=60s")
    pods = wait_for(
        lambda: (
            len(p := ctl.pods(ns)) == 4
            and {x["spec"]["containers"][0]["image"] for x in p} == {"nginx:1.29"}
            and p
        ),
        what="4 pods on nginx:1.29",
    )
    assert len(pods) == 4
    sets = json.loads(ctl.kubectl("get", "rs", "-n", ns, "-o", "json").stdout)["items"]
    assert sorted(s["spec"]["replicas"] for s in sets) == [0, 0, 4]
    ctl.kubectl("delete", "namespace", ns, "--wait=false")


def test_pods_of_a_deleted_node_are_replaced_elsewhere(ctl: Controllers) -> None:
    ns = ctl.namespace("nodegone")
    live = ("node-a", "node-b", "node-c")
    ctl.nodes.add("node-e", 5)
    try:
        for name in live:  # so both pods land on node-e
            ctl.kubectl("cordon", name)
        ctl.kubectl("apply", "-n", ns, "-f", "-", input=_deployment("pinned", 2))
        on_e = wait_for(
            lambda: (
                len(p := ctl.pods(ns)) == 2
                and {x["spec"].get("nodeName") for x in p} == {"node-e"}
                and p
            ),
            what="both on node-e",
        )
        for name in live:
            ctl.kubectl("uncordon", name)
        ctl.kubectl("delete", "node", "node-e")
        moved = wait_for(
            lambda: (
                len(p := ctl.pods(ns)) == 2
                and all(x["spec"].get("nodeName") in live for x in p)
                and p
            ),
            what="replacements on live nodes",
        )
        assert not {p["metadata"]["name"] for p in on_e} & {p["metadata"]["name"] for p in moved}
    finally:
        for name in live:
            ctl.kubectl("uncordon", name, check=False)
        ctl.nodes.remove("node-e")
        ctl.kubectl("delete", "namespace", ns, "--wait=false")


def test_delete_with_cascade_orphan_keeps_the_dependents_unlinked(ctl: Controllers) -> None:
    """`kubectl delete deploy --cascade=orphan` removes only the Deployment: its ReplicaSet and
    pods stay, the ReplicaSet no longer names the Deployment as owner, and the garbage collector
    leaves them alone; a plain delete of the ReplicaSet then takes its pods with it."""
    ns = ctl.namespace("orphan")
    ctl.kubectl("apply", "-n", ns, "-f", "-", input=_deployment("keep", 2))
    wait_for(lambda: len(ctl.pods(ns)) == 2, what="2 pods")
    pods_before = sorted(_names(ctl, ns))
    out = ctl.kubectl("delete", "deploy", "keep", "-n", ns, "--cascade=orphan")
    assert 'deployment.apps "keep" deleted' in out.stdout
    rs_list = json.loads(ctl.kubectl("get", "rs", "-n", ns, "-o", "json").stdout)["items"]
    assert len(rs_list) == 1
    assert "ownerReferences" not in rs_list[0]["metadata"]
    time.sleep(1.5)  # the collector has seen the owner's deletion by now
    assert sorted(_names(ctl, ns)) == pods_before
    rs_name = rs_list[0]["metadata"]["name"]
    assert json.loads(ctl.kubectl("get", "rs", rs_name, "-n", ns, "-o", "json").stdout)
    for pod in ctl.pods(ns):  # the pods still belong to the ReplicaSet
        assert pod["metadata"]["ownerReferences"][0]["name"] == rs_name
    ctl.kubectl("delete", "rs", rs_name, "-n", ns)
    wait_for(lambda: not ctl.pods(ns), what="pods gone with their ReplicaSet")
    ctl.kubectl("delete", "namespace", ns, "--wait=false")


def test_delete_options_with_an_unknown_propagation_policy_are_invalid(ctl: Controllers) -> None:
    """A DeleteOptions body with an unsupported `propagationPolicy` is a 422 naming the field,
    and nothing is deleted."""
    ns = ctl.namespace("badprop")
    ctl.kubectl("apply", "-n", ns, "-f", "-", input=_deployment("stay", 0))
    result = ctl.kubectl(
        "delete", "--raw", f"/apis/apps/v1/namespaces/{ns}/deployments/stay",
        "-f", "-", input=json.dumps({"propagationPolicy": "Sideways"}), check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert 'propagationPolicy: Unsupported value: "Sideways"' in result.stderr
    assert "stay" in ctl.kubectl("get", "deploy", "-n", ns).stdout
    ctl.kubectl("delete", "namespace", ns, "--wait=false")
