"""A theme switch (the command palette's "Change theme") draws the replies already on screen again, in the new
theme's colours: their lines were rendered once, with the colours of the theme at the time. Diffs, tool cards and
test counts are drawn in the theme's colours too."""

from __future__ import annotations

from textual.color import Color
from textual.command import CommandPalette
from textual.widgets import OptionList

from dsv4.tui.widgets.assistant_message import AssistantMessage
from dsv4.tui.widgets.diff_view import DiffView
from dsv4.tui.widgets.test_summary import TestSummary
from dsv4.tui.widgets.transcript import Transcript

from .helpers import make_app, ready, settle, turn, wait_until

REPLY = "## Fixed\n\nThe `add()` function **subtracted**.\n\n```python\ndef add(a, b):\n    return a + b\n```\n\n- done"


def colours(message: AssistantMessage) -> set[tuple[str, str | None, str | None]]:
    """(text, colour, background) of every segment the reply draws, as the screen paints it (render_line)."""
    drawn = [message.render_line(y) for y in range(message.content_size.height)]
    return {(seg.text.strip(), seg.style.color and seg.style.color.name, seg.style.bgcolor and seg.style.bgcolor.name)
            for line in drawn for seg in line if seg.text.strip() and seg.style is not None}


def background_of(found: set[tuple[str, str | None, str | None]], text: str) -> str | None:
    return next(bg for t, _, bg in found if t == text)


async def pick_from_palette(app, pilot, query: str, option: str) -> None:
    """Type `query` in the open command palette and press Enter once `option` is the highlighted hit."""
    await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette), "the command palette")
    await pilot.press(*query)

    def highlighted() -> str:
        options = app.screen.query_one(OptionList)
        chosen = options.highlighted_option
        return "" if chosen is None else str(chosen.prompt)

    await wait_until(pilot, lambda: highlighted().startswith(option), f"{option!r} highlighted in the palette")
    await pilot.press("enter")


async def test_a_theme_switch_redraws_the_replies_in_the_new_colours(calc_repo):
    app = make_app(calc_repo, [{"content": REPLY}])
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(app, pilot)
        await turn(app, pilot, "fix add")
        reply = screen.query_one(AssistantMessage)
        dark = colours(reply)
        surface = Color.parse(app.theme_variables["surface"]).hex.lower()
        assert app.theme == "textual-dark" and background_of(dark, "def") == surface  # code on the theme's surface

        await pilot.press("ctrl+p")
        await pick_from_palette(app, pilot, "theme", "Theme")
        await pick_from_palette(app, pilot, "textual-light", "textual-light")
        await wait_until(pilot, lambda: app.theme == "textual-light", "the light theme")
        await settle(app, pilot)
        light = colours(reply)
        light_surface = Color.parse(app.theme_variables["surface"]).hex.lower()
        assert background_of(light, "def") == light_surface != surface  # the code block drawn again, on the light surface
        painted = app.export_screenshot()  # what the terminal shows: the old theme's surface is gone from the screen
        assert f'fill="{light_surface}"' in painted and f'fill="{surface}"' not in painted
        inline_code = {(colour, bg) for text, colour, bg in dark if text == "add()"}
        assert inline_code and inline_code.isdisjoint((colour, bg) for text, colour, bg in light if text == "add()")
        assert {(t, c) for t, c, _ in dark if t == "Fixed"} != {(t, c) for t, c, _ in light if t == "Fixed"}  # heading
        # Drawn again exactly as a reply rendered for the first time in this theme.
        await screen.query_one(Transcript).add_assistant(REPLY)
        await settle(app, pilot)
        first, fresh = screen.query(AssistantMessage)
        assert colours(first) == colours(fresh) == light

        app.theme = "nord"  # dark to dark: only the colours change, and the replies follow them as well
        await settle(app, pilot)
        assert colours(first) != light and background_of(colours(first), "def") == Color.parse(
            app.theme_variables["surface"]).hex.lower()


async def test_a_reply_off_screen_is_drawn_again_only_when_scrolled_into_view(calc_repo):
    app = make_app(calc_repo, [])
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(app, pilot)
        transcript = screen.query_one(Transcript)
        await transcript.add_assistant(REPLY)
        for n in range(40):  # a streamed reply of many parts, long enough to push the first reply off screen
            await transcript.add_assistant_delta(f"Paragraph {n} says `x = {n}`.\n\n")
        await transcript.end_stream()
        await settle(app, pilot)
        transcript.scroll_end(animate=False)
        await settle(app, pilot)
        first, long = screen.query(AssistantMessage)
        assert not first.region.overlaps(transcript.region) and long.parts  # out of view; the long one has parts
        old = first.colours

        app.theme = "textual-light"
        await settle(app, pilot)
        new = long.colours
        assert new is not old and first._tail_style is old  # not drawn, so not rendered again
        assert sum(style is new for style in long._part_styles) < len(long.parts)  # only the parts on screen were
        transcript.scroll_home(animate=False)
        await settle(app, pilot)
        assert first.region.overlaps(transcript.region) and first._tail_style is new
        surface = Color.parse(app.theme_variables["surface"]).hex.lower()
        assert background_of(colours(first), "def") == surface


DIFF = ("--- a/calc/__init__.py\n+++ b/calc/__init__.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b\n"
        "+    return a + b\n")


def painted(widget) -> set[tuple[str, str | None, str | None]]:
    """(text, colour, background) of every segment `widget` draws."""
    drawn = [widget.render_line(y) for y in range(widget.content_size.height)]
    return {(seg.text.strip(), seg.style.color and seg.style.color.name, seg.style.bgcolor and seg.style.bgcolor.name)
            for line in drawn for seg in line if seg.text.strip() and seg.style is not None}


def colour_of(found: set[tuple[str, str | None, str | None]], text: str) -> tuple[str | None, str | None]:
    return next((colour, bg) for t, colour, bg in found if t == text)


async def test_diffs_tool_cards_and_test_counts_are_drawn_in_the_theme_colours(calc_repo):
    app = make_app(calc_repo, [])
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(app, pilot)
        transcript = screen.query_one(Transcript)
        card = await transcript.add_tool("c1", "edit_file", {"path": "calc/__init__.py"})
        card.finish(True, "edited calc/__init__.py")
        card.show_diff(DIFF)
        transcript.add_tests("python -m pytest -q", 2, 0, 0, True)
        await settle(app, pilot)
        diff, summary = card.query_one(DiffView), screen.query_one(TestSummary)

        def sign(y: int) -> tuple[str | None, str | None]:
            """The colours of the sign that starts line `y` of the diff (a "+" or "-" later on is an operator)."""
            first = next(seg for seg in diff.render_line(y) if seg.text.strip())
            return first.style.color and first.style.color.name, first.style.bgcolor and first.style.bgcolor.name

        def seen() -> dict[str, tuple[str | None, str | None]]:
            header, lines, counts = painted(card.query_one("#header")), painted(diff), painted(summary)
            assert [str(diff.render_line(y).text)[:1] for y in (4, 5)] == ["-", "+"]
            return {"mark": colour_of(header, "✓"), "removed": sign(4), "added": sign(5),
                    "passed": colour_of(counts, "2 passed"), "code": colour_of(lines, "def")}

        dark = seen()
        assert dark["mark"][0] == dark["added"][0] == dark["passed"][0]  # all three are the theme's $text-success
        assert dark["added"][1] != dark["removed"][1] and None not in (dark["added"][1], dark["removed"][1])
        assert dark["code"][0] != dark["mark"][0]  # the code is highlighted by its language, not by the line's sign
        for theme in ("textual-light", "nord"):
            before = seen()
            app.theme = theme
            await settle(app, pilot)
            after = seen()
            assert all(after[k] != before[k] for k in ("mark", "added", "removed", "passed")), (theme, before, after)
