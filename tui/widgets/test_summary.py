from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class TestSummary(Static):
    """A test run: pass/fail counts and the command, green or red."""

    __test__ = False  # not a pytest class
    DEFAULT_CSS = """
    TestSummary { padding: 0 1; margin: 0 0 0 2; }
    """

    def __init__(self, command: str, passed: int | None, failed: int | None, exit_code: int, ok: bool) -> None:
        self.passed, self.failed, self.ok = passed, failed, ok
        line = Text()
        line.append("▌ tests ", style="bold green" if ok else "bold red")
        counts = [f"{passed} passed" if passed is not None else "", f"{failed} failed" if failed else ""]
        shown = ", ".join(c for c in counts if c) or ("passed" if ok else f"failed (exit {exit_code})")
        line.append(shown, style="green" if ok else "red")
        line.append(f"  {command}", style="dim")
        super().__init__(line)
