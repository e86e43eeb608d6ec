"""Lint check KF013: the same NetworkPolicy namespace/name defined more than once.

Why this module exists: the loader rejects such input (an API server would keep only the last
definition); the audit reports it as a finding instead, both for inventories built in code and,
through ``split_duplicate_policies``, for manifest files before they are loaded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from kubefence.api import Document, NetworkPolicy
from kubefence.audit._findings import RULES_BY_ID, Finding
from kubefence.audit._lint._context import LintContext

__all__ = ["duplicate_policy_name", "split_duplicate_policies"]


def _duplicate_message(key: str, first: str) -> str:
    return f"NetworkPolicy {key} is also defined at {first}; applying both keeps only the last one"


def duplicate_policy_name(ctx: LintContext) -> Iterator[Finding]:
    """KF013: the same namespace/name defined more than once (inventories built in code)."""
    seen: dict[str, NetworkPolicy] = {}
    for policy in ctx.inventory.policies:
        first = seen.get(policy.key)
        if first is None:
            seen[policy.key] = policy
            continue
        where = str(first.origin) if first.origin is not None else "another document"
        yield ctx.finding(
            "KF013", _duplicate_message(policy.key, where), policy=policy, path="metadata.name"
        )


def split_duplicate_policies(
    documents: Sequence[Document], *, default_namespace: str = "default"
) -> tuple[list[Document], list[Finding]]:
    """KF013 for manifest files: set aside every later top-level NetworkPolicy document whose
    namespace/name an earlier one already defined, and report it.

    The loader rejects such input outright (an API server would keep only the last one); the
    audit reports it as a finding instead, so CI annotates both places and the rest of the
    input is still analysed. Duplicates inside ``kind: List`` are left to the loader.
    """
    kept: list[Document] = []
    findings: list[Finding] = []
    seen: dict[str, str] = {}
    meta = RULES_BY_ID["KF013"]
    for doc in documents:
        object_key = doc.key(default_namespace=default_namespace)
        if object_key is None or object_key.kind != "NetworkPolicy":
            kept.append(doc)
            continue
        key = f"{object_key.namespace}/{object_key.name}"
        where = f"{doc.file}:{doc.line}" if doc.line is not None else doc.file
        first = seen.get(key)
        if first is None:
            seen[key] = where
            kept.append(doc)
            continue
        findings.append(
            Finding(
                rule="KF013",
                severity=meta.severity,
                message=_duplicate_message(key, first),
                fix=meta.fix,
                namespace=key.split("/", 1)[0],
                object=f"NetworkPolicy {key}",
                path="metadata.name",
                file=doc.file,
                line=doc.line,
            )
        )
    return kept, findings
