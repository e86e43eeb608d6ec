"""docs/semantics.md and the test suite name the same rules.

Why this test exists: the rule catalogue is only worth reading if it stays true. Every rule id the
page defines (``### S07 ...``) must be named by at least one test function (``test_s07_...``,
``test_kf004_s21_...``), and every test the page lists (``tests/...py::test_...``) must exist and
name the rule it is listed under. The test suite is read with ``ast``, not imported.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "semantics.md"
TESTS = ROOT / "tests"

RULE_HEADING = re.compile(r"^### ([SV]\d\d) ", re.MULTILINE)
TEST_ID = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")
ONE_HOME = re.compile(r"^\| [^|]+ \| `(kubefence\.[\w.]+)` \|", re.MULTILINE)
EXPECTED_RULES = [f"S{i:02d}" for i in range(1, 26)] + [f"V{i:02d}" for i in range(1, 8)]


def names_rule(test_name: str, rule: str) -> bool:
    """Does ``test_name`` carry ``rule`` as one of its underscore-separated words?"""
    return rule.lower() in test_name.split("_")


def rule_sections(text: str) -> dict[str, str]:
    """Each rule id of the page, with the text of its section (up to the next heading)."""
    matches = list(RULE_HEADING.finditer(text))
    sections: dict[str, str] = {}
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        next_heading = text.find("\n## ", match.end())
        if 0 <= next_heading < end:
            end = next_heading
        sections[match.group(1)] = text[match.start() : end]
    return sections


def collect_test_functions(root: Path) -> dict[str, set[str]]:
    """Test function names per file (``tests/...py`` relative to the repository root)."""
    found: dict[str, set[str]] = {}
    for path in sorted(root.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        names = {
            node.name
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name.startswith("test_")
        }
        found[path.relative_to(root.parent).as_posix()] = names
    return found


def unnamed_rules(rules: Iterable[str], functions: Mapping[str, set[str]]) -> list[str]:
    every = {name for names in functions.values() for name in names}
    return [r for r in rules if not any(names_rule(name, r) for name in every)]


def bad_listings(sections: Mapping[str, str], functions: Mapping[str, set[str]]) -> list[str]:
    """Listed tests that do not exist, do not name their rule, or rules listing no test."""
    problems: list[str] = []
    for rule, section in sections.items():
        listed = TEST_ID.findall(section)
        if not listed:
            problems.append(f"{rule}: lists no test")
        for path, name in listed:
            if name not in functions.get(path, set()):
                problems.append(f"{rule}: {path}::{name} does not exist")
            elif not names_rule(name, rule):
                problems.append(f"{rule}: {path}::{name} does not name {rule}")
    return problems


def test_the_page_defines_every_rule_once_in_order() -> None:
    """S01-S25 then V01-V07, each with its own section."""
    assert RULE_HEADING.findall(DOC.read_text(encoding="utf-8")) == EXPECTED_RULES


def test_every_rule_is_named_by_a_test_function() -> None:
    sections = rule_sections(DOC.read_text(encoding="utf-8"))
    assert unnamed_rules(sections, collect_test_functions(TESTS)) == []


def test_every_listed_test_exists_and_names_its_rule() -> None:
    sections = rule_sections(DOC.read_text(encoding="utf-8"))
    assert bad_listings(sections, collect_test_functions(TESTS)) == []


def resolve(dotted: str) -> object:
    """The object a dotted name such as ``kubefence.api.Document.key`` names."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            found = getattr(found, attribute)
        return found
    raise ModuleNotFoundError(dotted)


def test_every_one_home_definition_exists() -> None:
    """The "one home" table names real, importable definitions (at least the eleven)."""
    names = ONE_HOME.findall(DOC.read_text(encoding="utf-8"))
    assert len(names) >= 11
    for name in names:
        assert callable(resolve(name)), name


def test_the_checks_can_fail() -> None:
    """A rule no test names, a listed test that is missing or misfiled, are all caught."""
    functions = {"tests/unit/x/test_x.py": {"test_s01_a", "test_kf004_s21_b", "test_s100_c"}}
    assert unnamed_rules(["S01", "S21", "S10", "V01"], functions) == ["S10", "V01"]
    page = (
        "### S01 one\n- `tests/unit/x/test_x.py::test_s01_a`\n"
        "### S02 two\n- `tests/unit/x/test_x.py::test_s02_gone`\n"
        "### S21 three\n- `tests/unit/x/test_x.py::test_s01_a`\n"
        "## Next part\n- `tests/unit/x/test_x.py::test_s100_c`\n"
        "### V01 four\nno test\n"
    )
    assert bad_listings(rule_sections(page), functions) == [
        "S02: tests/unit/x/test_x.py::test_s02_gone does not exist",
        "S21: tests/unit/x/test_x.py::test_s01_a does not name S21",
        "V01: lists no test",
    ]
