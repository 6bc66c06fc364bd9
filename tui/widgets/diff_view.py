from __future__ import annotations

from rich.syntax import Syntax
from textual.widgets import Static

MAX_DIFF_LINES = 400  # a longer diff is cut with a note; /diff and git show the rest


def diff_renderable(diff: str) -> Syntax:
    lines = diff.splitlines()
    if len(lines) > MAX_DIFF_LINES:
        diff = "\n".join(lines[:MAX_DIFF_LINES] + [f"… {len(lines) - MAX_DIFF_LINES} more lines"])
    return Syntax(diff, "diff", theme="ansi_dark", word_wrap=True, background_color="default")


class DiffView(Static):
    """A unified diff, syntax-highlighted."""

    DEFAULT_CSS = """
    DiffView { padding: 0 1; margin: 0 1 1 2; height: auto; background: $surface; }
    """

    def __init__(self, diff: str, **kwargs: object) -> None:
        super().__init__(diff_renderable(diff), **kwargs)
        self.diff = diff
