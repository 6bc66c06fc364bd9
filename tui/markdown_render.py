"""Markdown rendered once into lines (Strips) of a given width, for widgets that draw finished text line by line.

Textual re-measures and re-walks every widget of the screen on each layout, so a reply drawn as a tree of
Markdown widgets costs more per streamed chunk the longer it gets; text rendered once into lines costs nothing
until the width changes.
"""

from __future__ import annotations

from typing import ClassVar

from rich.console import Console, JustifyMethod
from rich.markdown import Heading, Markdown
from rich.segment import Segment
from textual.strip import Strip

from .reply_style import ReplyStyle


class LeftHeading(Heading):
    """Headings start at the left margin, as everything else in the transcript does."""

    LEVEL_ALIGN: ClassVar[dict[str, JustifyMethod]] = dict.fromkeys(("h1", "h2", "h3", "h4", "h5", "h6"), "left")


class ReplyMarkdown(Markdown):
    elements: ClassVar = {**Markdown.elements, "heading_open": LeftHeading}


def render_markdown(console: Console, text: str, width: int, style: ReplyStyle) -> list[Strip]:
    """`text` as lines `width` cells wide, in `style`'s colours. Rich puts one blank line before every top-level
    block but the first, so parts rendered alone and joined with one blank line are drawn exactly as the whole text
    would be."""
    if not text.strip() or width <= 0:
        return []
    markdown = ReplyMarkdown(text, code_theme=style.code)  # type: ignore[arg-type]  # Syntax takes a SyntaxTheme too
    with console.use_theme(style.markdown):
        lines = console.render_lines(markdown, console.options.update(width=width, height=None, highlight=False),
                                     pad=True)
    return [Strip(line, width) for line in lines]


def blank_line(width: int) -> Strip:
    return Strip([Segment(" " * width)], width)
