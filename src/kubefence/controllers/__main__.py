"""``python -m kubefence.controllers --kubeconfig F [--controllers a,b]``: the scheduler and
controllers as one process, until SIGTERM or SIGINT.

Why this module exists: ``cluster up`` (and tests) start the controllers as a process with the
controller manager's kubeconfig; this parses the flags, connects, runs the ``Manager`` and
stops it cleanly on a signal. Exit status 0 after a signal (also as a standby), 1 if the
caches never synced or the leader lease was lost.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType

from kubefence.client import connect
from kubefence.controllers.manager import ALL_CONTROLLERS, Manager


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubefence.controllers")
    parser.add_argument("--kubeconfig", required=True, help="the controller manager's kubeconfig")
    parser.add_argument("--context", default=None)
    parser.add_argument(
        "--controllers",
        default=",".join(ALL_CONTROLLERS),
        help=f"comma-separated subset of: {','.join(ALL_CONTROLLERS)} (default: all)",
    )
    parser.add_argument(
        "--node-monitor-grace-period",
        type=float,
        default=40.0,
        metavar="SECONDS",
        help="a node without a heartbeat this long becomes NotReady (default 40)",
    )
    parser.add_argument(
        "--leader-elect",
        choices=("true", "false"),
        default="true",
        help="hold kube-system/kube-controller-manager before running (default true)",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    chosen = [c.strip() for c in args.controllers.split(",") if c.strip()]
    try:
        kube = connect(args.kubeconfig, context=args.context, pool_size=64)
        manager = Manager(
            kube,
            controllers=chosen,
            node_grace=args.node_monitor_grace_period,
            leader_elect=args.leader_elect == "true",
        )
    except ValueError as exc:
        parser.error(str(exc))

    signalled: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        signalled.append(signum)
        manager.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ok = manager.start()  # False: stopped while a standby, or the caches never synced
    while ok and not manager.stopping.wait(1.0):
        pass
    manager.stop()
    return 0 if signalled and manager.elector_ok else 1


if __name__ == "__main__":
    sys.exit(main())
