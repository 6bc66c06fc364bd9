"""Issue 16 in the TUI: a preference that replaces an older one shows "replaces: <old>" with one key (Ctrl+R)
that takes the replacement back, from a captured sentence and from /remember."""

from __future__ import annotations

from dsv4.tui.widgets.notice import Notice
from dsv4.tui.widgets.replaced_line import ReplacedLine

from .helpers import make_app, ready, send, settle, turn, wait_until

OLD = "From now on, always run the tests with pytest -x"
NEW = "From now on, always run the tests with nox"


async def test_a_captured_replacement_shows_the_old_value_and_ctrl_r_keeps_both(calc_repo):
    app = make_app(calc_repo, [{"content": "ok"}, {"content": "ok"}])
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await ready(app, pilot)
        await turn(app, pilot, OLD)
        assert not screen.query(ReplacedLine)  # the first value replaces nothing
        await turn(app, pilot, NEW)
        (line,) = screen.query(ReplacedLine)
        assert "nox" in line.text and "pytest -x" in line.old_text and line.state == "undoable"
        shown = str(line.render())
        assert "replaces: " in shown and "pytest -x" in shown and "(ctrl+r undo)" in shown
        active = [m.text for m in screen.session.memories()]
        assert any("nox" in t for t in active) and not any("pytest -x" in t for t in active)
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: line.state == "undone", "the replacement to be taken back")
        await settle(app, pilot)
        active = [m.text for m in screen.session.memories()]
        assert any("nox" in t for t in active) and any("pytest -x" in t for t in active)
        assert any(str(n.text).startswith("kept both:") for n in screen.query(Notice))
        await pilot.press("ctrl+r")  # once only: nothing left to take back
        await settle(app, pilot)
        assert len([n for n in screen.query(Notice) if str(n.text).startswith("kept both:")]) == 1


async def test_remember_that_replaces_a_keyed_value_offers_the_same_undo(calc_repo):
    app = make_app(calc_repo, [])
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await ready(app, pilot)
        await send(app, pilot, "/remember indent=two spaces")
        await settle(app, pilot)
        assert not screen.query(ReplacedLine)
        await send(app, pilot, "/remember indent=four spaces")
        await wait_until(pilot, lambda: bool(screen.query(ReplacedLine)), "the replaces line")
        first = screen.query_one(ReplacedLine)
        assert first.text == "four spaces" and first.old_text == "two spaces"
        await send(app, pilot, "/remember indent=tabs")
        await wait_until(pilot, lambda: len(screen.query(ReplacedLine)) == 2, "the second replaces line")
        assert first.state == "kept" and screen.query(ReplacedLine)[1].state == "undoable"  # only the latest
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: screen.query(ReplacedLine)[1].state == "undone", "the undo")
        await settle(app, pilot)
        # Named by its key, the older value comes back in place of the newer one (one active value per key).
        assert [m.text for m in screen.session.memories() if m.key == "indent"] == ["four spaces"]
        assert any(str(n.text).startswith("restored ") for n in screen.query(Notice))
