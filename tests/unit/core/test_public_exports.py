"""The export lists of ``kubefence`` and ``kubefence.testing`` stay honest.

Why this test exists: ``import kubefence`` is a promise to users. Every name it exports must
import, be kubefence's own object with its own docstring, be listed in the public API section of
docs/architecture.md, and never be a private name; ``import kubefence`` must stay cheap (no
numpy until a ``Matrix`` is asked for).
"""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import kubefence
import kubefence.testing

ROOT = Path(__file__).resolve().parents[3]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
PUBLIC_MODULES = [kubefence, kubefence.testing]
USER_NAMES = {"Cluster", "Decision", "Reason", "Matrix", "Settings", "load"}
ERRORS = {"KubefenceError", "InputError", "ValidationError", "FieldError"}


def exported(module: ModuleType) -> list[str]:
    return [n for n in module.__all__ if n != "__version__"]


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_every_exported_name_imports_and_is_public(module: ModuleType) -> None:
    for name in exported(module):
        assert not name.startswith("_"), name
        obj = getattr(importlib.import_module(module.__name__), name)
        assert obj.__module__.startswith("kubefence."), (name, obj.__module__)
        assert not obj.__module__.startswith("kubefence.cli"), name


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_every_exported_name_has_its_own_docstring(module: ModuleType) -> None:
    for name in exported(module):
        doc = inspect.getdoc(getattr(module, name)) or ""
        # a dataclass without a docstring gets its signature as __doc__: not documentation
        assert doc, name
        assert not doc.startswith(f"{name}("), name


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_every_exported_name_is_in_the_architecture_page(module: ModuleType) -> None:
    page = ARCHITECTURE.read_text(encoding="utf-8")
    missing = [n for n in exported(module) if f"`{module.__name__}.{n}`" not in page]
    assert missing == []


def test_the_names_users_hold_are_exported() -> None:
    assert set(kubefence.__all__) >= USER_NAMES | ERRORS
    assert set(kubefence.testing.__all__) == {"assert_reachable", "assert_isolated"}


def test_from_kubefence_import_star_gives_the_list() -> None:
    namespace: dict[str, object] = {}
    exec("from kubefence import *", namespace)
    assert set(kubefence.__all__) <= set(namespace)


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Matric'"):
        _ = kubefence.Matric  # type: ignore[attr-defined]


def test_import_kubefence_does_not_load_numpy() -> None:
    """``Matrix`` comes on first use; the CLI imports ``kubefence`` for every command."""
    code = (
        "import sys, kubefence; assert 'numpy' not in sys.modules; "
        "kubefence.Matrix; assert 'numpy' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
