"""`python -m kubefence.control --state DIR [--port P] [--store sqlite|etcd]`: one API server
process in the foreground (what `kubefence cluster up` starts in the background)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import uvloop

from kubefence.control.app import serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m kubefence.control")
    parser.add_argument("--state", type=Path, required=True, help="the cluster's state directory")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--store", choices=("sqlite", "etcd"), default="sqlite")
    parser.add_argument("--etcd-endpoint", default="", help="https://127.0.0.1:PORT")
    parser.add_argument(
        "--token-file", type=Path, default=None, help='static tokens: token,user,uid,"groups"'
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    uvloop.run(
        serve(
            args.state,
            port=args.port,
            store_kind=args.store,
            etcd_endpoint=args.etcd_endpoint,
            token_file=args.token_file,
        )
    )


if __name__ == "__main__":
    main()
