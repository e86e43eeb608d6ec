"""Lint findings as a SARIF 2.1.0 log, the format code-scanning tools annotate pull requests with.

Why this module exists: CI systems (GitHub code scanning, GitLab, Azure DevOps) read SARIF and
place each result on the file and line it names. The log carries one ``reportingDescriptor`` per
kubefence rule id (stable ids, help text, default level) and one ``result`` per finding, with
``ruleIndex`` pointing at its descriptor. Paths become URIs relative to the working directory
when the file lies below it (what code-scanning uploads expect), absolute ``file://`` URIs
otherwise; findings without a file (stdin, a namespace only referenced) get a logical location.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kubefence.audit import RULES, Finding, LintRule, Severity

__all__ = ["SARIF_SCHEMA_URI", "sarif_log"]

SARIF_SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def _uri(file: str, base: Path) -> str:
    path = Path(file)
    absolute = path if path.is_absolute() else (base / path)
    try:
        return absolute.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return absolute.resolve().as_uri()


def _descriptor(rule: LintRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.description},
        "help": {"text": f"{rule.description}\nFix: {rule.fix}"},
        "defaultConfiguration": {"level": _LEVEL[rule.severity]},
        "properties": {"tags": ["kubernetes", "networkpolicy", "security"]},
    }


def _result(finding: Finding, index: dict[str, int], base: Path) -> dict[str, Any]:
    location: dict[str, Any] = {}
    if finding.file is not None and finding.file != "-" and not finding.file.startswith("<"):
        physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(finding.file, base)}}
        if finding.line is not None and finding.line >= 1:
            physical["region"] = {"startLine": finding.line}
        location["physicalLocation"] = physical
    logical = finding.object or (f"Namespace {finding.namespace}" if finding.namespace else None)
    if logical is not None:
        name = f"{logical} {finding.path}".strip()
        location["logicalLocations"] = [{"fullyQualifiedName": name, "kind": "resource"}]
    result: dict[str, Any] = {
        "ruleId": finding.rule,
        "ruleIndex": index[finding.rule],
        "level": _LEVEL[finding.severity],
        "message": {"text": f"{finding.message}. Fix: {finding.fix}"},
        "partialFingerprints": {
            "kubefenceFinding/v1": f"{finding.rule}:{finding.object or ''}:{finding.path}"
        },
    }
    if location:
        result["locations"] = [location]
    return result


def sarif_log(
    findings: Sequence[Finding],
    *,
    version: str,
    base: Path | None = None,
    rules: Sequence[LintRule] = RULES,
) -> dict[str, Any]:
    """The SARIF log object for ``findings`` (serialise with ``json.dumps``)."""
    root = base if base is not None else Path.cwd()
    index = {rule.id: i for i, rule in enumerate(rules)}
    return {
        "$schema": SARIF_SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "kubefence",
                        "version": version,
                        "semanticVersion": version,
                        "rules": [_descriptor(rule) for rule in rules],
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": [_result(f, index, root) for f in findings],
            }
        ],
    }
