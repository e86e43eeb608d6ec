"""``kubefence report``: one self-contained HTML file to look at a cluster's isolation.

Why this module exists: the audit's tables and the matrices answer precise questions; a review
of a whole cluster (or of a pull request, with ``--against``) wants a picture. This command
loads the manifests as ``kubefence audit`` does (a NetworkPolicy defined twice is finding
KF013, not an input error) through the CLI's inventory cache (``sources._cache``), computes
the report's data (``kubefence.report``) and writes the page to ``-o`` (``-`` for stdout).
Finding links point at the manifest files as ``file://`` URLs with ``#L<line>``. ``-v``
reports the time of each phase on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from kubefence.cli._inputs import (
    add_input_arguments,
    add_settings_arguments,
    check_kinds,
    settings_from_args,
)
from kubefence.cli._render_table import counted

# The API, the audit (numpy) and the report are imported by the functions that use them, so
# that ``kubefence --help``, which imports this module for its NAME and HELP, does not pay.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see cli/main.py)
if TYPE_CHECKING:
    from kubefence.api import Inventory
    from kubefence.audit import Finding

NAME = "report"
HELP = (
    "write one self-contained HTML report: namespace graph, reachability heat map per port "
    "class, audit findings, and the diff with --against"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(parser, verbose_help="report on stderr the time each phase took")
    add_settings_arguments(parser)
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help="the HTML file to write ('-' for stdout)",
    )
    parser.add_argument(
        "--against",
        action="append",
        metavar="PATH",
        help="proposed manifests (file, directory or '-'); repeatable: adds the diff per "
        "workload pair",
    )
    parser.add_argument(
        "--tenant-label",
        metavar="KEY",
        help="namespace label naming the tenant: groups namespaces in the graph and marks "
        "cross-tenant paths",
    )
    parser.add_argument("--title", default="kubefence report", help="the page's title")


def _load(paths: list[str], namespace: str) -> tuple[Inventory, list[Finding]]:
    """The inventory and the KF013 findings of NetworkPolicies defined again (set aside, not
    loaded). Through the CLI's inventory cache: an entry is stored only by a load that set
    nothing aside, and such input never has a duplicate (the loader rejects one), so a hit
    means no KF013 finding."""
    from kubefence.api import Document
    from kubefence.audit import split_duplicate_policies
    from kubefence.sources.files import load_paths

    duplicates: list[Finding] = []

    def keep(documents: list[Document]) -> list[Document]:
        kept, found = split_duplicate_policies(documents, default_namespace=namespace)
        duplicates.extend(found)
        return kept

    inventory = load_paths(paths, default_namespace=namespace, cache=True, keep=keep)
    return inventory, duplicates


def _linker() -> Callable[[str, int | None], str]:
    """Finding links as ``file://`` URLs with ``#L<line>``; each file resolved once per run
    (8,000 findings name a few files), against this run's working directory."""
    from pathlib import Path

    uris: dict[str, str] = {}

    def link(file: str, line: int | None) -> str:
        if file == "-":
            return "#"
        uri = uris.get(file)
        if uri is None:
            uri = uris[file] = Path(file).resolve().as_uri()
        return f"{uri}#L{line}" if line else uri

    return link


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kubefence.audit import Finding, lint
    from kubefence.report import render_html, report_data

    started = time.perf_counter()

    def log(phase: str) -> None:
        if args.verbose:
            ms = 1000 * (time.perf_counter() - started)
            print(f"kubefence report: {phase}: {ms:.0f} ms since start", file=sys.stderr)

    inventory, duplicates = _load(list(args.filenames), args.namespace)
    check_kinds(inventory, args, command="report")
    against = _load(list(args.against), args.namespace)[0] if args.against else None
    if against is not None:
        check_kinds(against, args, command="report")
    log(f"loaded {counted(len(inventory.pods), 'pod')}")
    findings = sorted((*lint(inventory), *duplicates), key=Finding.sort_key)
    log(f"{counted(len(findings), 'finding')}")
    data = report_data(
        inventory,
        findings,
        against=against,
        tenant_label=args.tenant_label,
        settings=settings_from_args(args),
        link=_linker(),
        title=args.title,
    )
    log("reachability, explanations and diff computed")
    page = render_html(data)
    if args.output == "-":
        sys.stdout.write(page)
    else:
        Path(args.output).write_text(page, encoding="utf-8")
    log(f"wrote {len(page.encode()) // 1024} KiB to {args.output}")
    return 0
