"""A headless Chromium for the report tests (Debian's ``/usr/bin/chromium``, driven by
Playwright; Playwright never downloads a browser here).

Why this module exists: the HTML report is only tested when a real browser opens it. Without
Chromium or Playwright the tests skip with the reason; in CI (``CI=true``,
``KUBEFENCE_REQUIRE_NETNS=1`` as ``.ci/run`` sets, or ``KUBEFENCE_REQUIRE_BROWSER=1``) that is a
failure instead. ``scripts/install-system-deps`` installs Chromium as root.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = os.environ.get("KUBEFENCE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def browser_missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "needs the Python package playwright (pip install -e '.[dev]')"
    if shutil.which(CHROMIUM) is None:
        return f"needs Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


def browser_required() -> bool:
    env = os.environ
    return (
        env.get("CI") == "true"
        or env.get("KUBEFENCE_REQUIRE_NETNS") == "1"
        or env.get("KUBEFENCE_REQUIRE_BROWSER") == "1"
    )


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    reason = browser_missing()
    if reason is not None:
        if browser_required():
            pytest.fail(f"the browser tests are required here but {reason}")
        pytest.skip(f"browser test {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
