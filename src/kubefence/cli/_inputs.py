"""The kubectl-like input options every command shares: ``-f`` (repeatable), ``-n``, ``-v``,
the live-cluster input of the analysis commands (``--kubeconfig``, ``--context``, ``-A``), and
the evaluation options of the commands that decide: ``--setting``, ``--family``.

Why this module exists: commands must read manifests the same way (files, directories, ``-``
for stdin; the same default namespace rule), so they share one definition of the options.
Live input reads the objects from an API server instead (``kubefence.client.read_objects``:
read-only, paginated) and validates them exactly as files are validated; as with kubectl,
``-n NS`` then reads that namespace (cluster-scoped kinds always in full), ``-A`` every
namespace, and neither the kubeconfig context's namespace (else ``default``).
"""

from __future__ import annotations

import sys

# Every command imports this module when its parser is built, ``kubefence --help`` included, so
# it imports nothing heavy at the top: the API models, the semantics and the errors are imported
# by the functions that use them.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see cli/main.py)
if TYPE_CHECKING:
    import argparse

    from kubefence.api import Document, Inventory
    from kubefence.semantics import Settings

__all__ = [
    "FAMILY_HELP",
    "VERBOSE_HELP",
    "add_family_argument",
    "add_input_arguments",
    "add_settings_arguments",
    "check_kinds",
    "family_from_args",
    "input_documents",
    "inventory_from_args",
    "not_evaluated",
    "settings_from_args",
]


VERBOSE_HELP = "also list skipped kinds and notes"


def _namespace_action() -> type[argparse.Action]:
    import argparse

    class NamespaceGiven(argparse.Action):
        """Stores ``-n`` and remembers that it was given (live input reads only it then)."""

        def __call__(
            self,
            parser: argparse.ArgumentParser,
            namespace: argparse.Namespace,
            values: object,
            option_string: str | None = None,
        ) -> None:
            namespace.namespace = values
            namespace.namespace_given = True

    return NamespaceGiven


def add_input_arguments(
    parser: argparse.ArgumentParser,
    *,
    required: bool = True,
    verbose_help: str = VERBOSE_HELP,
    live: bool = False,
) -> None:
    """``-f``, ``-n`` and ``-v``; each command says what ``-v`` adds (``verbose_help``). With
    ``live``, also ``--kubeconfig``, ``--context`` and ``-A`` (then ``-f`` is not required:
    one of the two inputs is, see ``input_documents``)."""
    parser.add_argument(
        "-f",
        "--filename",
        dest="filenames",
        action="append",
        metavar="PATH",
        required=required and not live,
        help="manifest file, directory (recursive: .yaml, .yml, .json) or '-' for stdin; "
        "repeatable" + ("; or read a live cluster with --kubeconfig/--context/-A" if live else ""),
    )
    parser.add_argument(
        "-n",
        "--namespace",
        default="default",
        action=_namespace_action(),
        help="namespace for objects that name none (default: %(default)s)"
        + ("; with live input, the only namespace read" if live else ""),
    )
    if live:
        parser.add_argument(
            "--kubeconfig",
            metavar="FILE",
            help="read the objects from this kubeconfig's API server (read-only) instead of -f",
        )
        parser.add_argument(
            "--context", help="kubeconfig context to read (default: the current one)"
        )
        parser.add_argument(
            "-A",
            "--all-namespaces",
            dest="all_namespaces",
            action="store_true",
            help="live input: read every namespace (default: -n, else the context's namespace)",
        )
    parser.add_argument("-v", "--verbose", action="store_true", help=verbose_help)
    parser.add_argument(
        "--no-strict",
        dest="no_strict",
        action="store_true",
        help="analyse even when the input has policy kinds kubefence does not read (Calico, "
        "Cilium, ... network policies); they are reported as not evaluated",
    )


def inventory_from_args(args: argparse.Namespace, *, command: str | None = None) -> Inventory:
    """Load and validate the manifests named by ``-f``; raises ValidationError (exit 2). With
    ``command`` (an analysis command), ``check_kinds`` also runs.

    With ``--family`` (when the command has it), the inventory as packets of that family see
    it (``kubefence.api.restrict_to_family``)."""
    from kubefence.api import build_inventory, restrict_to_family
    from kubefence.sources.files import load_paths

    live = input_documents(args)
    if live is None:
        inventory = load_paths(
            list(args.filenames or []), default_namespace=args.namespace, cache=True
        )
    else:
        inventory = build_inventory(live, default_namespace=args.namespace)
    if command is not None:
        check_kinds(inventory, args, command=command)
    family = family_from_args(args)
    return inventory if family is None else restrict_to_family(inventory, family)


def _is_live(args: argparse.Namespace) -> bool:
    return bool(
        getattr(args, "kubeconfig", None)
        or getattr(args, "context", None)
        or getattr(args, "all_namespaces", False)
    )


def input_documents(args: argparse.Namespace) -> list[Document] | None:
    """The live cluster's objects as documents when ``--kubeconfig``, ``--context`` or ``-A``
    was given (None: read ``-f``). Usage problems (both inputs, neither) are exit 2; an API
    server that cannot be reached is exit 3, one that refuses the request exit 2."""
    from kubefence.errors import EnvironmentProblem, InputError

    if not _is_live(args):
        if hasattr(args, "all_namespaces") and not args.filenames:
            raise InputError("give the manifests with -f, or read a cluster with --kubeconfig/-A")
        return None
    if args.filenames:
        raise InputError("-f and live input (--kubeconfig/--context/-A) exclude each other")
    from kubefence.api import Document
    from kubefence.client import ApiError, connect, read_objects

    try:
        kube = connect(args.kubeconfig, context=args.context)
    except Exception as exc:  # ConfigException, a missing or unreadable file
        raise InputError(f"cannot use the kubeconfig: {exc}") from None
    namespaces: list[str] | None = None
    if not args.all_namespaces:
        namespaces = [args.namespace if getattr(args, "namespace_given", False) else
                      _context_namespace(args)]  # fmt: skip
    try:
        objects = read_objects(kube, namespaces=namespaces)
    except ApiError as exc:
        raise InputError(f"the API server at {kube.host} refused to list: {exc}") from None
    except Exception as exc:  # connection refused, TLS, DNS
        raise EnvironmentProblem(f"cannot read the API server at {kube.host}: {exc}") from None
    finally:
        kube.close()
    source = f"<{kube.host}>"
    return [
        Document(content=obj, file=source, line=None, index=index)
        for index, obj in enumerate(objects)
    ]


def _context_namespace(args: argparse.Namespace) -> str:
    """The namespace of the kubeconfig context in use, as kubectl reads it (else default)."""
    try:
        from kubernetes import config

        contexts, current = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=args.kubeconfig
        )
        chosen = next((c for c in contexts if c["name"] == args.context), None) or current
        return str((chosen or {}).get("context", {}).get("namespace") or "default")
    except Exception:  # in-cluster or unreadable: the API's default
        return "default"


FAMILY_HELP = (
    "decide for packets of this address family only: each pod and Service keeps just its "
    "addresses of the family, so an ipBlock matches a dual-stack pod only by the address the "
    "packet carries (default: both families at once, a pod matching an ipBlock when any of "
    "its addresses does)"
)
_FAMILIES = {"ipv4": 4, "ipv6": 6}


def add_family_argument(parser: argparse.ArgumentParser) -> None:
    """``--family ipv4|ipv6``: results for packets of one address family (see ``FAMILY_HELP``)."""
    parser.add_argument("--family", choices=tuple(_FAMILIES), help=FAMILY_HELP)


def family_from_args(args: argparse.Namespace) -> int | None:
    """The IP version ``--family`` names (4 or 6), or None without it."""
    chosen = getattr(args, "family", None)
    return None if chosen is None else _FAMILIES[str(chosen)]


def not_evaluated(inventory: Inventory) -> dict[str, int]:
    """The kinds in the input no analysis evaluates, and their counts (``Inventory.skipped``)."""
    return dict(inventory.skipped)


def _is_policy_kind(kind: str) -> bool:
    """A kind that carries network policy (``CiliumNetworkPolicy``, Calico's
    ``GlobalNetworkPolicy``, ...): ignoring it changes answers, so it is refused by default."""
    return "networkpolicy" in kind.lower()


def check_kinds(inventory: Inventory, args: argparse.Namespace, *, command: str) -> None:
    """What every analysis command does with kinds it does not evaluate: list them on stderr;
    refuse (exit 2) policy-carrying ones unless ``--no-strict``. Admin tiers are evaluated by
    every execution (reference, engine, nftables), so they pass."""
    from kubefence.errors import InputError

    skipped = not_evaluated(inventory)
    policy_kinds = sorted(k for k in skipped if _is_policy_kind(k))
    if policy_kinds and not getattr(args, "no_strict", False):
        raise InputError(
            f"the input has policy kinds kubefence does not evaluate: "
            f"{', '.join(f'{skipped[k]} {k}' for k in policy_kinds)}; the answers would ignore "
            "them (use --no-strict to analyse anyway)"
        )
    if skipped:
        kinds = ", ".join(f"{count} {kind}" for kind, count in skipped.items())
        print(f"kubefence {command}: not evaluated: {kinds}", file=sys.stderr)


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """``--setting NAME=true|false`` (repeatable): the implementation-defined choices."""
    import dataclasses

    from kubefence.semantics import Settings

    names = ", ".join(f.name for f in dataclasses.fields(Settings))
    parser.add_argument(
        "--setting",
        dest="settings",
        action="append",
        default=[],
        metavar="NAME=BOOL",
        help=f"change an implementation-defined behaviour (see README); NAME is one of {names}",
    )


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The ``Settings`` named by ``--setting`` options; unknown names or values are exit 2."""
    import dataclasses

    from kubefence.errors import InputError
    from kubefence.semantics import DEFAULT_SETTINGS, Settings

    known = {f.name for f in dataclasses.fields(Settings)}
    chosen: dict[str, bool] = {}
    for item in getattr(args, "settings", None) or []:
        name, sep, value = str(item).partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in known:
            raise InputError(
                f"--setting {item!r}: expected NAME=true|false with NAME one of "
                f"{', '.join(sorted(known))}"
            )
        word = value.strip().lower()
        if word not in _TRUE | _FALSE:
            raise InputError(f"--setting {item!r}: the value must be true or false")
        chosen[name] = word in _TRUE
    return dataclasses.replace(DEFAULT_SETTINGS, **chosen)
