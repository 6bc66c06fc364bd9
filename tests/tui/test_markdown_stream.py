"""A reply streamed in chunks is drawn exactly as the whole reply rendered at once, while its finished blocks are
cut off the live tail (so a chunk's cost does not grow with the reply) and the reply stays one widget."""

from __future__ import annotations

import functools

import pytest
from rich.console import Console
from textual.app import App, ComposeResult
from textual.color import Color
from textual.selection import Selection

from dsv4.tui.markdown_blocks import finished_prefix
from dsv4.tui.markdown_render import blank_line, render_markdown
from dsv4.tui.reply_style import reply_style
from dsv4.tui.widgets.assistant_message import AssistantMessage
from dsv4.tui.widgets.transcript import Transcript

PROSE = "The function `parse_config` reads the file **once** and caches it; a second call is cheap. " * 3
REPLIES = {
    "prose, lists and code": "".join(
        f"{PROSE}\n\n" + ("```python\ndef f():\n\n    return 1\n```\n\n" if n % 3 == 0 else "")
        + ("- first\n- second\n\n" if n % 4 == 0 else "") for n in range(12)),
    "every block kind": ("# Title\n\nsome `code` here\n\n## Sub\ntext\n\n1. one\n2. two\n\n   more of two\n\n3. three\n\n"
                         "> quote\n>\n> more\n\npara\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nafter\n\n---\n\nend\n\n"
                         "***\n\n### h3\n\n    indented code\n\n    more\n\nlast"),
    "a fence with blank lines and a setext heading": ("text\n\n```python\ndef f():\n\n\n    return 1\n```\nnext para\n\n"
                                                      "- a\n\n- b\n\n  continued\n\nfinal\n===\n\nx\n\n~~~\nopen fence\n\nstill code"),
    "windows line ends": "one\r\n\r\ntwo **bold**\r\n\r\n```\r\ncode\r\n\r\nmore\r\n```\r\n\r\nthree\r\n\r\nfour",
}


@functools.cache
def dark_style():
    """The reply colours of Textual's default theme (code blocks with a background, inline code coloured)."""
    variables = App().theme_variables
    return reply_style(variables, True, Color.parse(variables["background"]))


def drawn(lines):
    return [[(segment.text, segment.style) for segment in line] for line in lines]


def streamed_lines(console: Console, text: str, width: int, step: int) -> tuple[list, int]:
    """What AssistantMessage draws after `text` arrived in `step`-character deltas, and how many parts were cut."""
    parts, tail = [], ""
    for start in range(0, len(text), step):
        tail += text[start:start + step]
        if cut := finished_prefix(tail):
            parts.append(tail[:cut])
            tail = tail[cut:]
    lines: list = []
    style = dark_style()
    for block in [render_markdown(console, part, width, style) for part in [*parts, tail]]:
        if block:
            if lines:
                lines.append(blank_line(width))
            lines.extend(block)
    return drawn(lines), len(parts)


@pytest.mark.parametrize("name", REPLIES)
@pytest.mark.parametrize("step", [1, 5, 12, 80])
def test_cut_parts_draw_exactly_the_whole_reply(name, step):
    console = Console(width=70, color_system="truecolor", force_terminal=True)
    text = REPLIES[name]
    whole = drawn(render_markdown(console, text, 70, dark_style()))
    lines, parts = streamed_lines(console, text, 70, step)
    assert lines == whole
    assert parts >= 1  # a cut was made, so the test compared cut parts with the whole


def test_no_cut_inside_an_open_fence_or_before_the_last_block():
    assert finished_prefix("para\n\n```python\nx = 1\n\ny = 2\n\nz = 3") == 0  # the open fence is the last block
    assert finished_prefix("one\n\ntwo") == 0  # `two` may still become a heading (`two\n===`)
    assert finished_prefix("one\n\ntwo\n\nthree") == len("one\n\n")
    assert finished_prefix("one\n\n---\n\ntwo\n\nthree") == 0  # not right after a rule (it brings a blank line)
    assert finished_prefix("one\n\n---\n\ntwo\n\nthree\n\nfour") == len("one\n\n---\n\ntwo\n\n")


class TranscriptApp(App):
    def compose(self) -> ComposeResult:
        yield Transcript()


async def test_a_streamed_reply_is_one_widget_drawn_as_the_whole_text():
    text = REPLIES["prose, lists and code"]
    app = TranscriptApp()
    async with app.run_test(size=(90, 30)) as pilot:
        transcript = app.query_one(Transcript)
        for start in range(0, len(text), 200):
            await transcript.add_assistant_delta(text[start:start + 200])
            await pilot.pause()
        await transcript.end_stream()
        await transcript.add_assistant(text)  # the same reply as a resumed session shows it
        await pilot.pause()
        streamed, whole = transcript.query(AssistantMessage)
        assert streamed.text == whole.text == text
        assert len(streamed.parts) > 5 and not streamed.children
        width = streamed.content_size.width
        assert drawn(streamed.lines(width)) == drawn(whole.lines(width))
        assert streamed.size.height == len(whole.lines(width))
        selected, _ = streamed.get_selection(Selection(None, None))  # select all, as a mouse drag over it would
        assert selected.splitlines()[0].startswith("The function parse_config reads the file once")
        assert "def f():" in selected and "• first" in selected
