"""A turn on screen: streamed Markdown, reasoning, tool cards, edit diffs, test counts, every event rendered."""

from __future__ import annotations

from dsv4.agent import events as ev
from dsv4.tui.messages import AgentEventPosted
from dsv4.tui.widgets.assistant_message import AssistantMessage
from dsv4.tui.widgets.diff_view import DiffView
from dsv4.tui.widgets.event_line import EventLine
from dsv4.tui.widgets.reasoning_block import ReasoningBlock
from dsv4.tui.widgets.status_bar import StatusBar
from dsv4.tui.widgets.test_summary import TestSummary
from dsv4.tui.widgets.tool_card import ToolCard
from dsv4.tui.widgets.user_message import UserMessage

from ..conftest import FIX_SCRIPT
from .helpers import make_app, ready, settle, turn


async def test_a_turn_streams_markdown_and_shows_cards_diff_and_test_counts(calc_repo):
    script = [{"content": "Let me **look**.", "reasoning_content": "The test says add is wrong.",
               "tool_calls": FIX_SCRIPT[0]["tool_calls"]}, *FIX_SCRIPT[1:]]
    app = make_app(calc_repo, script, test_command="python -m pytest -q")
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await ready(app, pilot)
        await turn(app, pilot, "fix the test")
        assert [w.text for w in screen.query(UserMessage)] == ["fix the test"]
        replies = list(screen.query(AssistantMessage))
        assert [w.text for w in replies] == ["Let me **look**.", "Fixed add(): it subtracted instead of adding. All tests pass."]
        drawn = replies[0].lines(replies[0].content_size.width)  # rendered as Markdown: the word drawn in bold
        assert [(seg.text.rstrip(), bool(seg.style and seg.style.bold)) for seg in drawn[0] if seg.text.strip()] == [
            ("Let me", False), ("look", True), (".", False)]
        reasoning = screen.query_one(ReasoningBlock)
        assert reasoning.collapsed and reasoning.text == "The test says add is wrong."
        cards = [(c.tool_name, c.state) for c in screen.query(ToolCard)]
        assert cards == [("read_file", "ok"), ("edit_file", "ok"), ("run_tests", "ok")]
        edit = screen.query(ToolCard)[1]
        diff = edit.query_one(DiffView).diff
        assert "-    return a - b" in diff and "+    return a + b" in diff
        tests = screen.query_one(TestSummary)
        assert tests.ok and tests.passed == 2
        assert any(line.text == "modified calc/__init__.py" for line in screen.query(EventLine))
        status = screen.query_one(StatusBar)
        assert status.state == "ready" and status.context_window == 131072 and status.context_used > 0
    assert "a + b" in (calc_repo / "calc" / "__init__.py").read_text()


async def test_a_tool_card_expands_to_show_its_output(calc_repo):
    app = make_app(calc_repo, FIX_SCRIPT[:1] + [{"content": "done"}])
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(app, pilot)
        await turn(app, pilot, "read it")
        card = screen.query_one(ToolCard)
        assert not card.query_one("#output").display
        await pilot.click(ToolCard)
        assert card.has_class("expanded") and card.query_one("#output").display
        assert "calc/__init__.py" in card.output or card.summary


async def test_synthetic_events_of_every_kind_render_and_unknown_ones_do_not_crash(calc_repo):
    from pydantic import BaseModel

    class FromANewerAgent(BaseModel):  # an event this build does not know
        type: str = "plan_updated"
        steps: int = 12

    app = make_app(calc_repo, [])
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(app, pilot)
        for event in [ev.AssistantDelta(text="# Title\n\nsome "), ev.AssistantDelta(text="`code` here"),
                      ev.AssistantMessage(content="# Title\n\nsome `code` here"),
                      ev.ToolRequested(call_id="c1", name="bash", arguments={"command": "ls"}),
                      ev.ToolDecision(call_id="c1", name="bash", approved=False, reason="denied by the user"),
                      ev.ToolFinished(call_id="c1", name="bash", ok=False, summary="denied"),
                      ev.FileChanged(path="a.py", action="created"),
                      ev.TestsRan(command="pytest", passed=3, failed=1, exit_code=1, ok=False),
                      ev.MemoryChanged(action="forgotten", item_id="m1"),
                      ev.UsageUpdate(step=ev.Usage(prompt_tokens=900, completion_tokens=100, cached_prompt_tokens=450),
                                     total=ev.Usage(prompt_tokens=900, completion_tokens=100, cached_prompt_tokens=450)),
                      ev.AgentError(message="boom"), ev.ContextUsage(used=5000, window=10000, share=0.5),
                      ev.Compacted(id="c1", first_kept_event_id=9, summary="s", source="model", trigger="auto",
                                   tokens_before=9000, tokens_after=2500),
                      ev.CompactionUndone(id="c1"),
                      ev.CompactionSkipped(trigger="manual", reason="the compacted View would not be smaller",
                                           tokens_before=1460, tokens_after=3597),
                      ev.KVRestore(prompt_tokens=5000, restored_tokens=4096, tier="disk-hot", prefill_tokens=904,
                                   restore_s=0.25, refused=["a corrupt file"]),
                      FromANewerAgent()]:
            screen.post_message(AgentEventPosted(event))
        await settle(app, pilot)
        assert screen.query_one(AssistantMessage).text == "# Title\n\nsome `code` here"
        assert screen.query_one(ToolCard).state == "denied"
        summary = screen.query_one(TestSummary)
        assert summary.failed == 1 and not summary.ok
        lines = [line.text for line in screen.query(EventLine)]
        assert "created a.py" in lines and "memory forgotten: m1" in lines
        assert "compacted (auto, model summary): 9,000 -> 2,500 tokens · /compact undo takes it back" in lines
        assert "compaction taken back: the model sees the earlier steps again" in lines
        assert "plan updated — steps: 12" in lines
        assert "not compacted (manual): the compacted View would not be smaller" in lines
        assert ("KV restored: 4,096 of 5,000 prompt tokens from disk-hot in 0.25 s, 904 computed "
                "(refused: a corrupt file)") in lines
        status = screen.query_one(StatusBar)
        assert (status.context_used, status.context_window) == (5000, 10000)
        assert "cache 50%" in status.plain
