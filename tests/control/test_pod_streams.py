"""kubectl exec / attach / logs / port-forward through the API server to a node's endpoint.

The real kubectl talks to a real API server (the ``cluster`` fixture); the pods' node is a
streaming server this module starts on 127.0.0.1 (node/_streams.py with a fake pod directory)
whose processes run in a network namespace the module creates. Needs root (``ip netns``).
"""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import pty
import select
import signal
import socket
import statistics
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.control.conftest import KUBECTL, Cluster
from tests.netns.streams_support import (
    FakePod,
    FakePods,
    NodeServer,
    issue_leaf,
    network_namespace,
)

from kubefence.node._process import ContainerProcess

pytestmark = pytest.mark.netns

NS = "streams"
NODE = "node-s"
SHELL_MAIN = ["sh", "-c", 'echo started; while read line; do echo "got $line"; done']
ONCE_MAIN = ["sh", "-c", 'read x; echo "once $x"']
WEB_PORT = 8080  # a web server in the pod's namespace, on its loopback
COUNTER_PORT = 8081  # counts what it receives until EOF, then answers the count
COUNTER = f"""
import socket
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", {COUNTER_PORT}))
server.listen()
while True:
    connection, _ = server.accept()
    count = 0
    while data := connection.recv(65536):
        count += len(data)
    connection.sendall(str(count).encode())
    connection.close()
"""
BIG = bytes(range(256)) * 16384  # 4 MiB


def _pods_yaml() -> str:
    def pod(name: str, containers: list[str], node: str | None, extra: str = "") -> str:
        items = ", ".join(f"{{name: {c}, image: busybox{extra}}}" for c in containers)
        bound = f"nodeName: {node}, " if node else ""
        return (
            f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {NS}}}\n"
            f"spec: {{{bound}containers: [{items}]}}\n"
        )

    docs = [
        f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NS}}}\n",
        pod("shell", ["main"], NODE),
        pod("once", ["main"], NODE),
        pod("two", ["a", "b"], NODE),
        pod("term", ["main"], NODE, ", stdin: true, stdinOnce: true, tty: true"),
        pod("ghost", ["main"], NODE),  # bound to the node, unknown to it
        pod("pending", ["main"], None),
    ]
    return "---\n".join(docs)


@dataclass(frozen=True)
class Setup:
    cluster: Cluster
    node: NodeServer
    netns: str
    logs: Path

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl("-n", NS, *args, input=input, check=False)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        env = {**os.environ, "KUBECONFIG": str(self.cluster.kubeconfig),
               "KUBECACHEDIR": str(self.cluster.cache)}  # fmt: skip
        return subprocess.Popen(
            [str(KUBECTL), "-n", NS, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip


@pytest.fixture(scope="module")
def setup(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("streams")
    pki = cluster.pki
    cert, key = issue_leaf(pki.ca_cert, pki.ca_key, tmp, name="node-s-serving",
                           common_name=f"system:node:{NODE}", server=True)  # fmt: skip
    with network_namespace("streams") as netns:
        directory = FakePods()
        node = NodeServer(directory, cert=cert, key=key, ca_cert=pki.ca_cert).start()
        try:
            logs = tmp / "logs"
            for name, argv, once in (("shell", SHELL_MAIN, False), ("once", ONCE_MAIN, True)):
                log = logs / f"{name}.log"
                process = node.call(
                    ContainerProcess.spawn(
                        argv, netns=netns, stdin=True, stdin_once=once, log_path=log
                    )
                )
                directory.pods[(NS, name)] = FakePod(netns, ["main"], {"main": process},
                                                     {"main": log})  # fmt: skip
            term = node.call(
                ContainerProcess.spawn(["sh"], netns=netns, tty=True, stdin=True, stdin_once=True)
            )
            directory.pods[(NS, "term")] = FakePod(netns, ["main"], {"main": term})
            directory.pods[(NS, "two")] = FakePod(netns, ["a", "b"])
            site = tmp / "site"
            site.mkdir()
            (site / "big.bin").write_bytes(BIG)
            web = ["python3", "-m", "http.server", str(WEB_PORT), "--bind", "127.0.0.1",
                   "--directory", str(site)]  # fmt: skip
            counter = ["python3", "-c", COUNTER]
            for name, argv in (("web", web), ("counter", counter)):
                directory.pods[(NS, "shell")].processes[name] = node.call(
                    ContainerProcess.spawn(argv, netns=netns)
                )
            cluster.kubectl("apply", "-f", "-", input=_pods_yaml())
            node_obj = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": NODE,
                    "annotations": {"kubefence.io/kubelet-host": "127.0.0.1"},
                },
            }
            code, created = cluster.request("POST", "/api/v1/nodes", node_obj)
            assert code == 201, created
            created["status"] = {"daemonEndpoints": {"kubeletEndpoint": {"Port": node.port}}}
            code, body = cluster.request("PUT", f"/api/v1/nodes/{NODE}/status", created)
            assert code == 200, body
            for name in ("shell", "once", "two", "term"):  # as the node component would report them
                path = f"/api/v1/namespaces/{NS}/pods/{name}"
                code, pod = cluster.request("GET", path)
                pod["status"] = {"phase": "Running"}
                code, body = cluster.request("PUT", f"{path}/status", pod)
                assert code == 200, body
            yield Setup(cluster, node, netns, logs)
        finally:
            node.stop()
            cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)
            cluster.kubectl("delete", "node", NODE, check=False)


# -- exec -------------------------------------------------------------------------------------


def test_exec_exit_code_stdout_stderr(setup: Setup) -> None:
    done = setup.kubectl("exec", "shell", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert done.returncode == 3, done.stderr
    assert done.stdout == "out\n"
    assert "err\n" in done.stderr
    assert "command terminated with exit code 3" in done.stderr


def test_exec_runs_in_the_pods_network_namespace(setup: Setup) -> None:
    done = setup.kubectl("exec", "shell", "--", "ip", "netns", "identify")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == setup.netns


def test_exec_with_stdin(setup: Setup) -> None:
    done = setup.kubectl("exec", "-i", "shell", "--", "sh", "-c", "cat; echo end",
                         input="hello\nworld\n")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello\nworld\nend\n"


def test_exec_large_output(setup: Setup) -> None:
    command = "head -c 20000000 /dev/zero | tr '\\0' a"
    done = setup.kubectl("exec", "shell", "--", "sh", "-c", command)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout) == 20_000_000
    assert set(done.stdout) == {"a"}


def test_exec_unknown_program(setup: Setup) -> None:
    done = setup.kubectl("exec", "shell", "--", "no-such-program")
    assert done.returncode != 0
    assert 'exec: "no-such-program": executable file not found in $PATH' in done.stderr


def _read_until(fd: int, needle: bytes, timeout: float = 15) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{needle!r} not seen in {seen!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    assert needle in seen, seen
    return seen


def _on_a_terminal(setup: Setup, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    """kubectl started on a new pseudo-terminal of 33 rows and 111 columns; its master end."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
    env = {**os.environ, "KUBECONFIG": str(setup.cluster.kubeconfig),
           "KUBECACHEDIR": str(setup.cluster.cache), "TERM": "xterm"}  # fmt: skip
    process = subprocess.Popen(
        [str(KUBECTL), "-n", NS, *args],
        stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    return process, master


def test_exec_with_a_terminal(setup: Setup) -> None:
    """kubectl -ti on a real terminal: a pty on the pod side, the window size passed on (the
    resize channel), input echoed, and the shell's exit code as kubectl's."""
    process, master = _on_a_terminal(setup, "exec", "-ti", "shell", "--", "sh")
    try:
        os.write(master, b"stty size; tty; echo sum-$((40+2))\r")
        seen = _read_until(master, b"sum-42")
        assert b"33 111" in seen
        assert b"/dev/pts/" in seen
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
        os.kill(process.pid, signal.SIGWINCH)
        time.sleep(0.3)
        os.write(master, b"stty size\r")
        _read_until(master, b"40 100")
        os.write(master, b"exit 5\r")
        assert process.wait(20) == 5
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)


# -- attach -----------------------------------------------------------------------------------


def test_attach_sees_output_and_feeds_stdin(setup: Setup) -> None:
    first, second = setup.popen("attach", "-i", "shell"), setup.popen("attach", "shell")
    try:
        assert first.stdin is not None
        assert first.stdout is not None
        assert second.stdout is not None
        time.sleep(1.5)  # both attached
        first.stdin.write("hello\n")
        first.stdin.flush()
        assert first.stdout.readline() == "got hello\n"
        assert second.stdout.readline() == "got hello\n"  # every attached client sees output
    finally:
        for process in (first, second):
            process.kill()
            process.communicate()


def test_attach_to_a_terminal(setup: Setup) -> None:
    """kubectl attach -ti to a main process on a pty (what `kubectl run -ti` does): the
    terminal's size, input and output; kubectl returns when the shell exits."""
    process, master = _on_a_terminal(setup, "attach", "-ti", "term")
    try:
        time.sleep(1.0)
        os.write(master, b"stty size; echo att-$((2+3))\r")
        seen = _read_until(master, b"att-5")
        assert b"33 111" in seen
        os.write(master, b"exit\r")
        assert process.wait(20) == 0
        main = setup.node.directory.pods[(NS, "term")].processes["main"]
        assert setup.node.call(main.wait()) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)


def test_attach_with_stdin_once_ends_with_the_process(setup: Setup) -> None:
    done = setup.kubectl("attach", "-i", "once", input="bye\n")
    assert done.returncode == 0, done.stderr
    assert "once bye" in done.stdout
    started = time.monotonic()
    followed = setup.kubectl("logs", "-f", "once")  # the container has exited: -f returns
    assert (followed.returncode, followed.stdout) == (0, "once bye\n")
    assert time.monotonic() - started < 10


def test_attach_to_a_container_without_a_process(setup: Setup) -> None:
    done = setup.kubectl("attach", "two", "-c", "b")
    assert done.returncode != 0
    assert 'container "b" in pod "two" is not running' in done.stderr


# -- logs -------------------------------------------------------------------------------------


def test_logs_plain_timestamps_tail_and_follow(setup: Setup) -> None:
    done = setup.kubectl("logs", "shell")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("started\n")
    assert setup.kubectl("logs", "shell", "--limit-bytes=4").stdout == "star"
    assert setup.kubectl("logs", "shell", "--since=1h").stdout == done.stdout
    stamped = setup.kubectl("logs", "shell", "--timestamps")
    first = stamped.stdout.splitlines()[0]
    stamp, _, text = first.partition(" ")
    assert text == "started"
    assert stamp.endswith("Z")
    assert len(stamp) == len("2026-01-01T00:00:00.000000000Z")
    follower = setup.popen("logs", "-f", "--tail=1", "shell")
    try:
        assert follower.stdout is not None
        last = follower.stdout.readline()
        assert last == done.stdout.splitlines(keepends=True)[-1]
        process = setup.node.directory.pods[(NS, "shell")].processes["main"]
        setup.node.call(process.write_stdin(b"followed\n"))
        assert follower.stdout.readline() == "got followed\n"
    finally:
        follower.kill()
        follower.communicate()
    assert setup.kubectl("logs", "shell", "--tail=1").stdout == "got followed\n"
    previous = setup.kubectl("logs", "shell", "--previous")
    assert previous.returncode != 0
    assert 'previous terminated container "main" in pod "shell" not found' in previous.stderr


def test_logs_of_an_unscheduled_pod_are_empty(setup: Setup) -> None:
    done = setup.kubectl("logs", "pending")
    assert (done.returncode, done.stdout) == (0, "")


# -- errors and authorization -------------------------------------------------------------------


def test_missing_pod_container_node_and_host(setup: Setup) -> None:
    code, body = setup.cluster.request(
        "GET", f"/api/v1/namespaces/{NS}/pods/nosuch/exec?command=true"
    )
    assert (code, body["reason"], body["message"]) == (404, "NotFound", 'pods "nosuch" not found')
    done = setup.kubectl("exec", "shell", "-c", "nope", "--", "true")  # kubectl checks first
    assert done.returncode != 0
    assert "container nope is not valid for pod shell" in done.stderr
    code, body = setup.cluster.request(
        "GET", f"/api/v1/namespaces/{NS}/pods/shell/exec?command=true&container=nope"
    )
    assert (code, body["message"]) == (400, "container nope is not valid for pod shell")
    code, body = setup.cluster.request(
        "GET", f"/api/v1/namespaces/{NS}/pods/shell/log?container=nope"
    )
    assert (code, body["message"]) == (400, "container nope is not valid for pod shell")
    done = setup.kubectl("exec", "pending", "--", "true")
    assert done.returncode != 0
    assert "pod pending does not have a host assigned" in done.stderr
    done = setup.kubectl("exec", "ghost", "--", "true")
    assert done.returncode != 0
    assert "pod does not exist" in done.stderr
    code, body = setup.cluster.request(
        "GET", f"/api/v1/namespaces/{NS}/pods/two/exec?command=true&stdout=true"
    )
    assert code == 400
    assert body["message"] == "a container name must be specified for pod two, choose one of: [a b]"


def test_spdy_is_refused_with_a_clear_status(setup: Setup) -> None:
    code, body = setup.cluster.request(
        "POST", f"/api/v1/namespaces/{NS}/pods/shell/exec?command=true&stdout=true",
        headers={"Connection": "Upgrade", "Upgrade": "SPDY/3.1"},
    )  # fmt: skip
    assert code == 400
    assert "SPDY is not supported" in body["message"]


def _forwarded(process: subprocess.Popen[str], remote: int) -> int:
    assert process.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("Forwarding from 127.0.0.1:") and line.rstrip().endswith(f"-> {remote}"):
            return int(line.split(":")[1].split()[0])
    raise AssertionError("kubectl port-forward printed no local port")


def _http_get(port: int, path: str = "/") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def test_port_forward_reaches_the_pods_loopback(setup: Setup) -> None:
    """kubectl port-forward (SPDY/3.1 tunneled through a WebSocket): several connections over
    one session, each to the pod's own localhost:8080 inside its network namespace."""
    forward = setup.popen("port-forward", "pod/shell", f":{WEB_PORT}", f":{COUNTER_PORT}")
    try:
        local = _forwarded(forward, WEB_PORT)
        for _ in range(3):
            status, body = _http_get(local)
            assert status == 200
            assert b"big.bin" in body
        assert _http_get(local, "/big.bin") == (200, BIG)  # 4 MiB down
        counter = _forwarded(forward, COUNTER_PORT)
        with socket.create_connection(("127.0.0.1", counter), timeout=30) as connection:
            connection.sendall(BIG)  # 4 MiB up, then a half-close the pod sees as EOF
            connection.shutdown(socket.SHUT_WR)
            assert connection.recv(100) == str(len(BIG)).encode()
    finally:
        forward.kill()
        forward.communicate()


def test_port_forward_to_a_closed_port_reports_the_error(setup: Setup) -> None:
    forward = setup.popen("port-forward", "pod/shell", ":9")
    try:
        local = _forwarded(forward, 9)
        with socket.create_connection(("127.0.0.1", local), timeout=10) as connection:
            connection.settimeout(10)
            assert connection.recv(100) == b""  # closed without data
    finally:
        time.sleep(0.5)
        forward.kill()
        _, err = forward.communicate()
    assert "error forwarding port 9 to pod shell" in err
    assert "Connection refused" in err


def test_rbac_exec_needs_create_on_pods_exec(setup: Setup) -> None:
    setup.cluster.kubectl("create", "rolebinding", "dev-view", "-n", NS, "--clusterrole=view",
                          "--user=dev")  # fmt: skip
    try:
        done = setup.kubectl("exec", "--as=dev", "shell", "--", "true")
        assert done.returncode != 0
        assert (
            'User "dev" cannot create resource "pods/exec" in API group "" in the namespace '
            f'"{NS}"' in done.stderr
        )
        attach = setup.kubectl("attach", "--as=dev", "shell")
        assert 'cannot create resource "pods/attach"' in attach.stderr
        logs = setup.kubectl("logs", "--as=dev", "shell")  # view may read logs
        assert logs.returncode == 0, logs.stderr
        assert logs.stdout.startswith("started\n")
        code, body = setup.cluster.request(
            "GET", f"/api/v1/namespaces/{NS}/pods/shell/log", headers={"Impersonate-User": "nobody"}
        )
        assert code == 403
        assert 'User "nobody" cannot get resource "pods/log"' in body["message"]
    finally:
        setup.cluster.kubectl("delete", "rolebinding", "dev-view", "-n", NS, check=False)


def _median_ms(setup: Setup, *args: str, runs: int = 20) -> tuple[float, float, float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = setup.kubectl(*args)
        times.append((time.perf_counter() - started) * 1000)
        assert done.returncode == 0, done.stderr
    return statistics.median(times), min(times), max(times)


def test_exec_round_trip(setup: Setup) -> None:
    """`kubectl exec -- true`, 20 times: the median round trip (target <= 150 ms), beside
    `kubectl get pod` (the same process start, config and TLS, one plain request)."""
    setup.kubectl("exec", "shell", "--", "true")  # warm up
    exec_ms = _median_ms(setup, "exec", "shell", "--", "true")
    get_ms = _median_ms(setup, "get", "pod", "shell", "-o", "name")
    figures = [f"median {m:.1f} ms (min {lo:.1f}, max {hi:.1f})" for m, lo, hi in (exec_ms, get_ms)]
    print(f"\nkubectl exec -- true: {figures[0]}; kubectl get pod: {figures[1]}")
    assert exec_ms[0] < 1000  # a loose guard on a shared machine; the figures are reported


def test_audit_records_the_subresource(setup: Setup) -> None:
    setup.kubectl("exec", "shell", "--", "true")
    lines = (setup.cluster.info.directory / "audit.log").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    execs = [e for e in entries if e["subresource"] == "exec" and e["name"] == "shell"]
    assert execs
    assert execs[-1]["verb"] == "create"
