"""``python -m kubefence.node --cluster C --node NAME --kubeconfig F``: one node's component.

Why this module exists: it is the fixed entry point ``cluster up`` starts once per node (and a
user may restart by hand after killing it). It wires the node component (``_component``) to
its API credentials, its state directory and, when helper modules are present, the node's
HTTPS endpoint for exec/attach/logs (``_streams``) and the policy agent is started separately
by ``cluster up``. Logs go to stderr; SIGTERM stops it and leaves the pods running.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from kubefence.client import connect
from kubefence.dataplane.netns import node_from_name
from kubefence.node._component import NodeComponent
from kubefence.node._endpoint import start_endpoint


def _default_state(cluster: str, node: str) -> Path:
    root = os.environ.get("KUBEFENCE_STATE") or "/run/kubefence/clusters"
    return Path(root) / cluster / "nodes" / node


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubefence.node", description=__doc__)
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--node", required=True, help="node-<i>")
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--state", type=Path, default=None, help="the node's state directory")
    parser.add_argument("--serving-cert", type=Path, default=None)
    parser.add_argument("--serving-key", type=Path, default=None)
    parser.add_argument("--client-ca", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )  # fmt: skip
    plan = node_from_name(args.cluster, args.node)
    state = args.state or _default_state(args.cluster, args.node)
    kube = connect(args.kubeconfig)
    component = NodeComponent(kube, node=plan, directory=state, python=sys.executable)
    if args.serving_cert and args.serving_key and args.client_ca:
        component.port = start_endpoint(
            component, cert=args.serving_cert, key=args.serving_key, ca=args.client_ca
        )
    signal.signal(signal.SIGTERM, lambda signum, frame: component.stop())
    signal.signal(signal.SIGINT, lambda signum, frame: component.stop())
    component.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
