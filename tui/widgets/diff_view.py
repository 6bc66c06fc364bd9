"""Unified diffs in the theme's colours: each file's code highlighted for its language (by its name), added and
removed lines on a green or red tint, hunk headers in the accent colour. The styles are Textual theme variables,
resolved when drawn, so a theme switch recolours every diff on screen."""

from __future__ import annotations

import re
from typing import Any

from textual.content import Content
from textual.highlight import highlight
from textual.widgets import Static

MAX_DIFF_LINES = 400  # a longer diff is cut with a note; /diff and git show the rest
FILE_HEADER = "bold"
HUNK_HEADER = "$text-accent"
NOTE = "$text-muted italic"  # "\ No newline at end of file", the cut note
# A hunk with more code than this (a minified file, a generated one) is drawn without highlighting: the lexer runs on
# the UI thread, and a 400 kB line took it 3.6 s here (a 400-line hunk of ordinary code: 0.1 s).
MAX_HIGHLIGHTED_CHARS = 20_000
LINE_STYLES = {"+": ("bold $text-success", "on $success 18%"), "-": ("bold $text-error", "on $error 18%"),
               " ": ("$text-muted", "")}  # (the sign's style, the whole line's tint)
HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")
NEW_PATH = re.compile(r"^\+\+\+ (?:b/)?(.+?)\t?$")


def _hunk_lines(lines: list[str], start: int, old: int, new: int) -> int:
    """Where the hunk whose body starts at `start` ends: after `old` old-side and `new` new-side lines (so a
    removed line that reads "--- x" is not taken for the next file's header)."""
    end = start
    while end < len(lines) and (old > 0 or new > 0 or lines[end].startswith("\\")):
        sign = lines[end][:1]
        if sign not in LINE_STYLES and sign != "\\":
            break  # a malformed count: stop at the first line that is not part of a hunk
        old -= sign in " -"
        new -= sign in " +"
        end += 1
    return end


def _body(lines: list[str], path: str | None, width: int) -> list[Content]:
    """A hunk's body lines, their code highlighted together (a string or a comment spanning lines stays one); the
    tint of an added or removed line runs to `width` cells."""
    code_lines = [line[1:] for line in lines if not line.startswith("\\")]
    code = "\n".join(code_lines)
    highlighted = highlight(code, path=path).split("\n") if path and len(code) <= MAX_HIGHLIGHTED_CHARS else []
    highlighted += [Content(text) for text in code_lines[len(highlighted):]]  # trailing blank lines, unknown files
    drawn, code = [], iter(highlighted)
    for line in lines:
        if line.startswith("\\"):
            drawn.append(Content.styled(line, NOTE))
            continue
        sign_style, tint = LINE_STYLES[line[0]]
        row = Content.assemble((line[0], sign_style), next(code))
        if tint:
            row = row.pad_right(max(width - row.cell_length, 0)).stylize_before(tint)
        drawn.append(row)
    return drawn


def diff_content(diff: str, width: int = 0) -> Content:
    """`diff` (unified, as git writes it) drawn line by line, cut after MAX_DIFF_LINES lines; `width`: the cells
    the tint of a changed line fills (0: its text only)."""
    lines = diff.splitlines()
    shown = lines[:MAX_DIFF_LINES]
    drawn: list[Content] = []
    path: str | None = None
    index = 0
    while index < len(shown):
        line = shown[index]
        if hunk := HUNK.match(line):
            end = _hunk_lines(shown, index + 1, int(hunk[1] or 1), int(hunk[2] or 1))
            drawn.append(Content.styled(line, HUNK_HEADER))
            drawn.extend(_body(shown[index + 1:end], path, width))
            index = end
            continue
        if named := NEW_PATH.match(line):
            path = named[1] if named[1] != "/dev/null" else path
        elif line.startswith("--- ") and line[4:] != "/dev/null":
            path = line[4:].removeprefix("a/").rstrip("\t")  # a deletion names its file only here
        drawn.append(Content.styled(line, FILE_HEADER if line.startswith(("diff ", "--- ", "+++ ")) else NOTE))
        index += 1
    if len(lines) > MAX_DIFF_LINES:
        drawn.append(Content.styled(f"… {len(lines) - MAX_DIFF_LINES} more lines (/diff shows all)", NOTE))
    return Content("\n").join(drawn)


class DiffView(Static):
    """A unified diff, highlighted; the changed lines' tint spans the view's width (drawn again when it changes)."""

    DEFAULT_CSS = """
    DiffView { padding: 0 1; margin: 0 0 1 2; height: auto; background: $surface; }
    """

    def __init__(self, diff: str, **kwargs: Any) -> None:
        super().__init__(diff_content(diff), **kwargs)
        self.diff = diff
        self._drawn_width = 0  # the width the tint was drawn to

    def on_resize(self) -> None:
        # Never wider than the content area, so a tinted line does not wrap: the height stays what it was. A change
        # of height alone (the widget laid out again) draws nothing again.
        if self.content_size.width != self._drawn_width:
            self._draw()

    def show(self, diff: str) -> None:
        self.diff = diff
        self._draw()
        self.add_class("shown")

    def _draw(self) -> None:
        self._drawn_width = self.content_size.width
        self.update(diff_content(self.diff, self._drawn_width))
