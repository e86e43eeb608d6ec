"""Shared test configuration: hypothesis profiles and the rule for privileged tests.

Privileged data-plane tests (marker ``netns``) need root, ``ip`` and ``nft``. Outside CI they
skip with the reason; in CI (``CI=true`` or ``KUBEFENCE_REQUIRE_NETNS=1``) a missing
prerequisite is a failure, so the data plane can never be silently untested.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def netns_missing() -> str | None:
    """Why privileged tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"needs '{tool}' (apt-get install {'iproute2' if tool == 'ip' else 'nftables'})"
    return None


def netns_required() -> bool:
    return os.environ.get("KUBEFENCE_REQUIRE_NETNS") == "1" or os.environ.get("CI") == "true"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = netns_missing()
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("netns") is None:
            continue
        if netns_required():
            item.add_marker(pytest.mark.usefixtures("_netns_prerequisites_fail"))
        else:
            item.add_marker(pytest.mark.skip(reason=f"data-plane test {reason}"))


@pytest.fixture
def _netns_prerequisites_fail() -> None:
    pytest.fail(f"privileged data-plane tests are required here but {netns_missing()}")


@pytest.fixture(autouse=True, scope="session")
def _private_inventory_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The CLI caches loaded inventories under $XDG_CACHE_HOME (``sources._cache``): the tests'
    runs use a directory of their own, never the user's cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield
