"""What every TUI test shares."""

from __future__ import annotations

import pytest
import textual._wait


@pytest.fixture(autouse=True)
def repository_pytest_without_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test repositories' own pytest runs (the run_tests tool, /test) inherit this environment: without it each
    run would load every pytest plugin installed here (textual's snapshot plugin among them), about 1 s of CPU for
    a two-test repository that uses none of them, against 0.3 s."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


@pytest.fixture(autouse=True)
def idle_checked_in_short_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pilot's press() and pause() wait until the process looks idle: Textual sleeps in 20 ms slices until one sees
    under 1 ms of CPU (5%), at least one slice per wait, two per key press. Over this folder that is ~470 waits and
    ~10 s of its wall time asleep with nothing left to do. 2 ms slices with the same 5% rule wait for the same
    quiet, a tenth as long once it has come (the tests wait for what they need by its state: tests/tui/helpers.py)."""
    monkeypatch.setattr(textual._wait, "SLEEP_GRANULARITY", 0.002)
    monkeypatch.setattr(textual._wait, "SLEEP_IDLE", 0.0001)
