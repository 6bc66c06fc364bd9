"""What every TUI test shares."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def repository_pytest_without_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test repositories' own pytest runs (the run_tests tool, /test) inherit this environment: without it each
    run would load every pytest plugin installed here (textual's snapshot plugin among them), about 1 s of CPU for
    a two-test repository that uses none of them, against 0.3 s."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
