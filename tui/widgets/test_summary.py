from __future__ import annotations

from textual.content import Content
from textual.widgets import Static


class TestSummary(Static):
    """A test run: pass/fail counts and the command, in the theme's success or error colour."""

    __test__ = False  # not a pytest class
    DEFAULT_CSS = """
    TestSummary { padding: 0 1; margin: 0 0 0 2; }
    """

    def __init__(self, command: str, passed: int | None, failed: int | None, exit_code: int, ok: bool) -> None:
        self.passed, self.failed, self.ok = passed, failed, ok
        colour = "$text-success" if ok else "$text-error"
        counts = [f"{passed} passed" if passed is not None else "", f"{failed} failed" if failed else ""]
        shown = ", ".join(c for c in counts if c) or ("passed" if ok else f"failed (exit {exit_code})")
        super().__init__(Content.assemble(("▌ tests ", f"bold {colour}"), (shown, colour), (f"  {command}", "dim")))
