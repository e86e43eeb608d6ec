"""When the agent waits to gather a batch of changes, and when it installs at once."""

from __future__ import annotations

from kubefence.agent._agent import gather_first


def test_a_change_to_an_idle_agent_is_installed_at_once() -> None:
    """The first change after a quiet spell does not pay the debounce (leading edge)."""
    assert not gather_first(first_change=10.0, last_install=9.0, debounce=0.005)
    assert not gather_first(first_change=10.0, last_install=-float("inf"), debounce=0.005)


def test_changes_during_a_burst_are_gathered() -> None:
    """A change seen within the debounce of the last install's end waits for the rest of the
    burst, so a burst is a few transactions, not one per event."""
    assert gather_first(first_change=10.002, last_install=10.0, debounce=0.005)
    assert gather_first(first_change=9.99, last_install=10.0, debounce=0.005)  # during install
