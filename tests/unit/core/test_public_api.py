"""The curated public API: what ``import kubefence`` offers, and nothing by accident."""

from __future__ import annotations

import importlib

import kubefence


def test_all_lists_exactly_the_public_names() -> None:
    """Every name in ``__all__`` exists, and every public attribute is listed in ``__all__``."""
    for name in kubefence.__all__:
        assert hasattr(kubefence, name), name
    public = {
        n
        for n in vars(kubefence)
        if not n.startswith("_") and not isinstance(getattr(kubefence, n), type(importlib))
    }
    assert public - {"annotations"} == set(kubefence.__all__) - {"__version__"}


def test_subpackage_exports_resolve() -> None:
    """Each layer's ``__all__`` names objects that really exist in it."""
    for module_name in ("kubefence.api", "kubefence.semantics", "kubefence.errors"):
        module = importlib.import_module(module_name)
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert missing == [], f"{module_name} exports missing names {missing}"
