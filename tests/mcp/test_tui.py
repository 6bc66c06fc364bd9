"""The TUI with a real MCP server: the call is shown, asked for like a command, approved, run and rendered."""

from __future__ import annotations

from dsv4.tui.screens.approval import ApprovalScreen
from dsv4.tui.widgets.notice import Notice
from dsv4.tui.widgets.tool_card import ToolCard

from ..tui.helpers import chat, make_app, ready, send, settle, wait_until
from .conftest import calls, stdio_entry


async def test_an_mcp_call_is_asked_for_approved_and_rendered(mcp_repo):
    repo = mcp_repo()
    script = calls(("mcp__t__echo", {"text": "from the tui"}), ("mcp__t__add", {"a": 2, "b": 3}),
                   ("mcp__t__echo", {"text": "not asked"}), final="all done")
    app = make_app(repo, script, mode="ask")
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        assert "mcp__t__echo" in chat(app).session.tool_names
        await send(app, pilot, "use the server")
        await wait_until(pilot, lambda: isinstance(app.screen, ApprovalScreen) and bool(app.screen.query("#detail-body")),
                         "the approval dialog")
        dialog = app.screen
        shown = str(dialog.query_one("#detail-body").render())
        assert dialog.tool_name == "mcp__t__echo" and '"text": "from the tui"' in shown
        assert dialog.rule_text == "mcp__t__echo: *"
        assert chat(app).query_one(ToolCard).state == "waiting"
        await pilot.press("a")  # always allow this tool: the second echo is not asked for; add still is
        await wait_until(pilot, lambda: isinstance(app.screen, ApprovalScreen) and app.screen.tool_name == "mcp__t__add",
                         "the approval of the second tool")
        await pilot.press("y")
        await wait_until(pilot, lambda: not chat(app).busy, "the turn to finish")
        await settle(app, pilot)
        cards = list(chat(app).query(ToolCard))
        assert [c.state for c in cards] == ["ok", "ok", "ok"]
        assert cards[0].summary.startswith("echo: from the tui") and cards[1].summary == "5"
        assert cards[2].summary.startswith("echo: not asked")


async def test_a_server_that_fails_to_start_is_a_notice_and_the_session_opens(mcp_repo):
    repo = mcp_repo({"t": stdio_entry(), "broken": stdio_entry("--crash-on-start")})
    app = make_app(repo, [{"content": "hello"}], mode="ask")
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        await wait_until(pilot, lambda: any("'broken' failed to start" in n.text for n in chat(app).query(Notice)),
                         "the warning notice")
        assert "mcp__t__echo" in chat(app).session.tool_names
        assert not any(name.startswith("mcp__broken__") for name in chat(app).session.tool_names)
