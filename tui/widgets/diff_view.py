from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

MAX_DIFF_LINES = 400  # a longer diff is cut with a note; /diff and git show the rest
STYLES = (("+++", "bold"), ("---", "bold"), ("diff ", "bold"), ("@@", "cyan"), ("+", "green"), ("-", "red"),
          ("\\", "dim"))


def diff_renderable(diff: str) -> Text:
    """A unified diff coloured line by line: additions green, removals red, hunk headers cyan, file names bold."""
    lines = diff.splitlines()
    shown = lines[:MAX_DIFF_LINES]
    text = Text(no_wrap=False)
    for line in shown:
        style = next((s for prefix, s in STYLES if line.startswith(prefix)), "")
        text.append(line + "\n", style=style)
    if len(lines) > MAX_DIFF_LINES:
        text.append(f"… {len(lines) - MAX_DIFF_LINES} more lines (/diff shows all)\n", style="dim italic")
    text.rstrip()
    return text


class DiffView(Static):
    """A unified diff, highlighted."""

    DEFAULT_CSS = """
    DiffView { padding: 0 1; margin: 0 0 1 2; height: auto; background: $surface; }
    """

    def __init__(self, diff: str, **kwargs: Any) -> None:
        super().__init__(diff_renderable(diff), **kwargs)
        self.diff = diff

    def show(self, diff: str) -> None:
        self.diff = diff
        self.update(diff_renderable(diff))
        self.add_class("shown")
