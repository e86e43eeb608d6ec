"""``cluster up --nodes K`` on real namespaces with the real kubectl: nodes Ready, pods Running
with addresses from their node's CIDR, traffic across nodes, deletion, a SIGKILLed node
component that leaves its pods serving and reconciles on restart, and ``cluster down`` after a
SIGKILL of everything leaving nothing behind."""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.control.conftest import Cluster, state_restored

from kubefence.control.cluster import cluster_down, cluster_up

pytestmark = pytest.mark.netns

NGINX_PODS = """
apiVersion: v1
kind: Namespace
metadata: {name: x}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: x}
spec:
  nodeName: node-2
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {pod: a}}
spec:
  nodeName: node-1
  containers:
  - name: cont-80-tcp
    image: registry.k8s.io/e2e-test-images/agnhost:2.53
    command: [/agnhost, serve-hostname, --tcp, --http=false, --port, "80"]
    ports: [{containerPort: 80, protocol: TCP}]
  - name: cont-81-udp
    image: registry.k8s.io/e2e-test-images/agnhost:2.53
    command: [/agnhost, serve-hostname, --udp, --http=false, --port, "81"]
    ports: [{containerPort: 81, protocol: UDP}]
"""


def _start(tmp: Path, name: str, nodes: int) -> Cluster:
    os.environ["KUBEFENCE_STATE"] = str(tmp)
    info = cluster_up(name, nodes=nodes, timeout=60)
    return Cluster(info, info.directory / "kubeconfig", tmp / f"kubectl-cache-{name}")


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("nodes")
    name = f"n{os.getpid() % 100000}"
    with state_restored():
        try:
            yield _start(tmp, name, 3)
        finally:
            cluster_down(name)
            shutil.rmtree(tmp, ignore_errors=True)


def _pod(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    done = cluster.kubectl("get", "pod", "-n", namespace, name, "-o", "json")
    return dict(json.loads(done.stdout))


def _bind_unscheduled(cluster: Cluster, namespace: str, name: str, node: str) -> None:
    """Without ``kubefence.controllers`` (the scheduler) the test binds the pod itself."""
    try:
        if importlib.util.find_spec("kubefence.controllers.__main__") is not None:
            return
    except ModuleNotFoundError:
        pass
    pod = _pod(cluster, namespace, name)
    if not pod["spec"].get("nodeName"):
        pod["spec"]["nodeName"] = node
        cluster.kubectl("replace", "-f", "-", input=json.dumps(pod))


def _running(cluster: Cluster, namespace: str, name: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        pod = _pod(cluster, namespace, name)
        if pod.get("status", {}).get("phase") == "Running":
            return pod
        if time.monotonic() > deadline:
            raise AssertionError(f"{namespace}/{name} not Running: {pod.get('status')}")
        time.sleep(0.1)


def _netns_of(cluster: Cluster, pod: dict[str, Any]) -> str:
    """The pod's namespace, from its node's record (``nodes/<node>/node.json``)."""
    node = pod["spec"]["nodeName"]
    record = json.loads((cluster.info.directory / "nodes" / node / "node.json").read_text())
    for entry in record["pods"]:
        if entry["uid"] == pod["metadata"]["uid"]:
            return f"kf-{cluster.info.name}-{node}-{entry['slot_index']}"
    raise AssertionError(f"{pod['metadata']['name']} is not recorded on {node}")


def _in_pod(netns: str, *command: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", netns, *command], capture_output=True,
                          text=True, timeout=timeout, check=False)  # fmt: skip


def _netns() -> set[str]:
    done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in done.stdout.splitlines() if line.strip()}


def test_three_nodes_are_ready_with_addresses_cidrs_and_leases(three: Cluster) -> None:
    nodes = json.loads(three.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == ["node-0", "node-1", "node-2"]
    for node in nodes:
        i = int(node["metadata"]["name"].split("-")[1])
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True"
        assert node["metadata"]["labels"]["kubernetes.io/hostname"] == f"node-{i}"
        assert {"type": "InternalIP", "address": f"198.19.255.{i + 1}"} in node["status"][
            "addresses"
        ]
        assert node["spec"]["podCIDRs"] == [
            f"198.18.{i + 1}.0/24",
            f"fd00:6b66::c612:{i + 1}00/120",
        ]
        assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] > 0
    table = three.kubectl("get", "nodes").stdout
    assert table.count(" Ready ") == 3, table
    lease = json.loads(three.kubectl("get", "lease", "-n", "kube-node-lease", "node-0",
                                     "-o", "json").stdout)  # fmt: skip
    time.sleep(2.5)
    later = json.loads(three.kubectl("get", "lease", "-n", "kube-node-lease", "node-0",
                                     "-o", "json").stdout)  # fmt: skip
    assert later["spec"]["holderIdentity"] == "node-0"
    assert later["spec"]["renewTime"] > lease["spec"]["renewTime"]


def test_kubectl_run_expose_gets_running_and_is_reached_from_another_node(
    three: Cluster,
) -> None:
    three.kubectl("create", "namespace", "test")
    three.kubectl("run", "nginx", "--image=nginx", "--labels", "app=nginx", "-n", "test",
                  "--expose", "--port", "80")  # fmt: skip
    _bind_unscheduled(three, "test", "nginx", "node-0")
    nginx = _running(three, "test", "nginx")
    node = int(nginx["spec"]["nodeName"].split("-")[1])
    ip = ipaddress.ip_address(nginx["status"]["podIP"])
    assert ip in ipaddress.ip_network(f"198.18.{node + 1}.0/24")
    assert nginx["status"]["hostIP"] == f"198.19.255.{node + 1}"
    assert [c["type"] for c in nginx["status"]["conditions"] if c["status"] == "True"] == [
        "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"
    ]  # fmt: skip
    container = nginx["status"]["containerStatuses"][0]
    assert container["ready"]
    assert "startedAt" in container["state"]["running"]
    other = f"node-{(node + 1) % 3}"
    three.kubectl("run", "curl", "-n", "test", "--image=busybox", "--restart=Never",
                  f"--overrides={json.dumps({'spec': {'nodeName': other}})}",
                  "--", "sleep", "3600")  # fmt: skip
    client = _running(three, "test", "curl")
    assert client["spec"]["nodeName"] == other
    netns = _netns_of(three, client)
    answer = _in_pod(netns, "curl", "-s", "-m", "5", f"http://{ip}/")
    assert "Welcome to nginx!" in answer.stdout, answer
    v6 = nginx["status"]["podIPs"][1]["ip"]
    answer6 = _in_pod(netns, "curl", "-s", "-m", "5", f"http://[{v6}]/")
    assert "Welcome to nginx!" in answer6.stdout, answer6


def test_agnhost_connect_across_nodes_tcp_udp_and_refused(three: Cluster) -> None:
    three.kubectl("apply", "-f", "-", input=NGINX_PODS)
    server = _running(three, "x", "a")
    client = _running(three, "x", "client")
    assert server["spec"]["nodeName"] != client["spec"]["nodeName"]
    target = server["status"]["podIP"]
    agnhost = str(three.info.directory / "nodes" / "node-2" / "bin" / "agnhost")
    netns = _netns_of(three, client)
    tcp = _in_pod(netns, agnhost, "connect", f"{target}:80", "--timeout=1s", "--protocol=tcp")
    udp = _in_pod(netns, agnhost, "connect", f"{target}:81", "--timeout=1s", "--protocol=udp")
    closed = _in_pod(netns, agnhost, "connect", f"{target}:82", "--timeout=1s", "--protocol=tcp")
    assert (tcp.returncode, udp.returncode) == (0, 0), (tcp, udp)
    assert (closed.returncode, closed.stderr.strip()) == (1, "REFUSED")
    hostname = _in_pod(netns, "nc", "-w", "2", target, "80")
    assert hostname.stdout == "a\n", hostname


def test_pod_deletion_removes_its_namespace(three: Cluster) -> None:
    three.kubectl("run", "gone", "-n", "default", "--image=nginx", "--restart=Never",
                  f"--overrides={json.dumps({'spec': {'nodeName': 'node-1'}})}")  # fmt: skip
    pod = _running(three, "default", "gone")
    netns = _netns_of(three, pod)
    assert netns in _netns()
    three.kubectl("delete", "pod", "-n", "default", "gone", "--wait=false")
    deadline = time.monotonic() + 10
    while netns in _netns() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert netns not in _netns()


def test_exit_codes_restart_policy_and_host_network(three: Cluster) -> None:
    three.kubectl("apply", "-f", "-", input="""
apiVersion: v1
kind: Pod
metadata: {name: fails, namespace: default}
spec:
  nodeName: node-0
  restartPolicy: Never
  containers: [{name: c, image: busybox, command: [sh, -c, "exit 3"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: hostnet, namespace: default}
spec:
  nodeName: node-2
  hostNetwork: true
  containers: [{name: c, image: nginx, ports: [{containerPort: 8080}]}]
""")  # fmt: skip
    deadline = time.monotonic() + 20
    while (phase := _pod(three, "default", "fails")["status"].get("phase")) != "Failed":
        assert time.monotonic() < deadline, phase
        time.sleep(0.2)
    state = _pod(three, "default", "fails")["status"]["containerStatuses"][0]["state"]
    assert state["terminated"]["exitCode"] == 3
    hostnet = _running(three, "default", "hostnet")
    assert hostnet["status"]["podIP"] == "198.19.255.3"
    answer = _in_pod(f"kf-{three.info.name}-node-0", "curl", "-s", "-m", "5",
                     "http://198.19.255.3:8080/")  # fmt: skip
    assert "Welcome to nginx!" in answer.stdout, answer


def test_sigkilled_node_component_keeps_pods_serving_and_reconciles(three: Cluster) -> None:
    three.kubectl("run", "steady", "-n", "default", "--image=nginx", "--restart=Never",
                  f"--overrides={json.dumps({'spec': {'nodeName': 'node-1'}})}")  # fmt: skip
    steady = _running(three, "default", "steady")
    client = _running(three, "x", "client")
    netns = _netns_of(three, client)
    url = f"http://{steady['status']['podIP']}/"
    node_dir = three.info.directory / "nodes" / "node-1"
    os.kill(int((node_dir / "component.pid").read_text()), signal.SIGKILL)
    time.sleep(0.3)
    assert "Welcome to nginx!" in _in_pod(netns, "curl", "-s", "-m", "5", url).stdout
    # While it is down: one pod is deleted, one is created.
    three.kubectl("delete", "pod", "-n", "test", "nginx", "--wait=false")
    three.kubectl("run", "newcomer", "-n", "default", "--image=nginx", "--restart=Never",
                  f"--overrides={json.dumps({'spec': {'nodeName': 'node-1'}})}")  # fmt: skip
    before = _netns()
    cluster_up(three.info.name, timeout=60)  # restarts what is not running
    newcomer = _running(three, "default", "newcomer")
    again = _pod(three, "default", "steady")
    assert again["status"]["podIP"] == steady["status"]["podIP"]
    assert _netns_of(three, again) == _netns_of(three, steady)
    assert "Welcome to nginx!" in _in_pod(netns, "curl", "-s", "-m", "5", url).stdout
    record = json.loads((node_dir / "node.json").read_text())
    keys = [p["key"] for p in record["pods"]]
    assert len(keys) == len(set(keys)), keys
    assert "test/nginx" not in keys
    assert "default/newcomer" in keys
    after = _netns()
    assert _netns_of(three, newcomer) in after
    ours = f"kf-{three.info.name}-"  # other tests on the machine make namespaces meanwhile
    new = {n for n in after - before if n.startswith(ours)}
    assert new == {_netns_of(three, newcomer)}  # only the newcomer's namespace is new


def test_one_node_restarts_after_sigkill_of_everything_and_down_leaves_nothing(
    tmp_path: Path,
) -> None:
    name = f"o{os.getpid() % 100000}"
    with state_restored():
        cluster = _start(tmp_path, name, 1)
        try:
            nodes = cluster.kubectl("get", "nodes").stdout
            assert "node-0" in nodes, nodes
            assert " Ready " in nodes, nodes
            on_node = f"--overrides={json.dumps({'spec': {'nodeName': 'node-0'}})}"
            cluster.kubectl("run", "web", "--image=nginx", "--restart=Never", on_node)
            _running(cluster, "default", "web")
            cluster.kubectl("run", "sh", "--image=busybox", "--restart=Never", on_node,
                            "--", "sh", "-c", "sleep 3600")  # fmt: skip
            _running(cluster, "default", "sh")
            directory = cluster.info.directory
            web_ip = _pod(cluster, "default", "web")["status"]["podIP"]
            ours = _processes(directory, name)
            assert len(ours) >= 4, ours  # server, node component, node server, sh + sleep
            for pid in ours:
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while _processes(directory, name):  # SIGKILL is delivered asynchronously
                assert time.monotonic() < deadline, _processes(directory, name)
                time.sleep(0.05)
            # Up again after the crash of everything: the same pod, address and namespace.
            again = _start(tmp_path, name, 1)
            deadline = time.monotonic() + 20
            node = f"kf-{name}-node-0"
            while "Welcome to nginx!" not in _in_pod(node, "curl", "-s", "-m", "2",
                                                       f"http://{web_ip}/").stdout:  # fmt: skip
                assert time.monotonic() < deadline, "web does not answer after the restart"
                time.sleep(0.2)
            assert _pod(again, "default", "web")["status"]["podIP"] == web_ip
            for pid in _processes(directory, name):
                os.kill(pid, signal.SIGKILL)
        finally:
            cluster_down(name)
        assert not [n for n in _netns() if n.startswith(f"kf-{name}-")]
        assert not _processes(directory, name)
        assert not directory.exists()
        assert not list(Path("/etc/netns").glob(f"kf-{name}-*"))


def _processes(directory: Path, name: str) -> list[int]:
    """Processes of this cluster: naming its state directory or inside its namespaces."""
    inodes = set()
    for netns in _netns():
        if netns.startswith(f"kf-{name}-"):
            inodes.add(os.stat(f"/run/netns/{netns}").st_ino)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            inode = os.stat(entry / "ns" / "net").st_ino
        except OSError:
            continue
        if str(directory) in cmdline or inode in inodes:
            found.append(int(entry.name))
    return found


def test_container_output_is_a_cri_log_with_the_pods_resolver_and_restarts_back_off(
    three: Cluster,
) -> None:
    """A command container runs under its supervisor through ``ip netns exec``: its output is
    in the CRI log format ``kubectl logs`` reads, it sees the pod's resolv.conf, and with
    ``restartPolicy: Always`` an exiting command is restarted (restartCount counts)."""
    three.kubectl("apply", "-f", "-", input="""
apiVersion: v1
kind: Pod
metadata: {name: talker, namespace: x}
spec:
  nodeName: node-0
  containers:
  - name: c
    image: busybox
    command: [sh, -c, "echo out; echo err >&2; grep nameserver /etc/resolv.conf; sleep 0.2"]
""")  # fmt: skip
    deadline = time.monotonic() + 20
    while True:
        status = _pod(three, "x", "talker")["status"]
        restarts = (status.get("containerStatuses") or [{}])[0].get("restartCount", 0)
        if restarts >= 1:
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    uid = _pod(three, "x", "talker")["metadata"]["uid"]
    log = (three.info.directory / "nodes" / "node-0" / "pods" / uid / "c.log").read_text()
    lines = [line.split(" ", 3) for line in log.splitlines()]
    assert sorted((s, tag, text) for _, s, tag, text in lines[:3]) == [
        ("stderr", "F", "err"),  # two pipes: the order between them is not fixed
        ("stdout", "F", "nameserver 198.19.0.10"),
        ("stdout", "F", "out"),
    ]
    assert lines[0][0].endswith("Z")


def test_a_silent_node_goes_not_ready_and_recovers_on_restart(three: Cluster) -> None:
    """SIGKILL of node-2's component: its Lease stops, the node lifecycle controller (in
    kubefence.controllers, started by cluster up with a 10 s grace period) marks it NotReady;
    ``cluster up`` again restarts the component and it is Ready again."""
    pytest.importorskip("kubefence.controllers.__main__", reason="needs kubefence.controllers")
    node_dir = three.info.directory / "nodes" / "node-2"
    os.kill(int((node_dir / "component.pid").read_text()), signal.SIGKILL)

    def ready() -> str:
        node = json.loads(three.kubectl("get", "node", "node-2", "-o", "json").stdout)
        return str({c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"])

    deadline = time.monotonic() + 40
    while ready() == "True":
        assert time.monotonic() < deadline, "node-2 still Ready 40 s after its component died"
        time.sleep(0.5)
    cluster_up(three.info.name, timeout=60)
    deadline = time.monotonic() + 30
    while ready() != "True":
        assert time.monotonic() < deadline, "node-2 not Ready again after its restart"
        time.sleep(0.2)
