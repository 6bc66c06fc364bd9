"""Custom slash commands and /init in the TUI: listed in /help and the palette, `/name args` sends the expansion."""

from __future__ import annotations

from dsv4.tui.palette import SlashCommandProvider
from dsv4.tui.widgets.notice import Notice
from dsv4.tui.widgets.prompt_editor import PromptEditor

from .helpers import chat, make_app, ready, send, settle, turn

REVIEW = "---\ndescription: Review a file for bugs\nargument-hint: FILE\n---\nReview $1 for bugs.\n"


def notices(app) -> list[str]:
    return [n.text for n in chat(app).query(Notice)]


def add_commands(repo, home) -> None:
    (repo / ".dsv4" / "commands").mkdir(parents=True)
    (repo / ".dsv4" / "commands" / "review.md").write_text(REVIEW)
    (home / "commands").mkdir(parents=True)  # the config dir is DSV4_HOME in tests
    (home / "commands" / "standup.md").write_text("Write my standup.\n")
    (home / "commands" / "Bad Name.md").write_text("x\n")


async def test_custom_commands_in_help_palette_and_prompt(calc_repo, dsv4_home):
    add_commands(calc_repo, dsv4_home)
    app = make_app(calc_repo, [{"content": "reviewed"}])
    async with app.run_test(size=(110, 30)) as pilot:
        await ready(app, pilot)
        await send(app, pilot, "/help")
        await settle(app, pilot)
        help_text = notices(app)[-1]
        assert "/review FILE" in help_text and "Review a file for bugs (project)" in help_text
        assert "/standup" in help_text and "(user)" in help_text
        assert "Bad Name.md: not loaded: a command name is" in help_text  # what did not load, and why
        provider = SlashCommandProvider(chat(app), None)
        found = [hit.text async for hit in provider.discover()]
        assert "/review" in found and "/standup" in found
        hits = [hit async for hit in provider.search("review")]
        hits[0].command()  # a custom command goes to the prompt, for its arguments
        await settle(app, pilot)
        assert chat(app).query_one(PromptEditor).text == "/review "
        await turn(app, pilot, "/review calc/__init__.py")
        sent = [m.content for m in chat(app).session.history() if m.role == "user"]
        assert sent == ["Review calc/__init__.py for bugs."]


async def test_init_writes_agents_md_and_refuses_to_overwrite(calc_repo):
    app = make_app(calc_repo, [])
    async with app.run_test(size=(110, 30)) as pilot:
        await ready(app, pilot)
        await send(app, pilot, "/init")
        await settle(app, pilot)
        assert "wrote" in notices(app)[-1] and (calc_repo / "AGENTS.md").is_file()
        (calc_repo / "AGENTS.md").write_text("mine\n")
        await send(app, pilot, "/init")
        await settle(app, pilot)
        assert "exists already" in notices(app)[-1] and (calc_repo / "AGENTS.md").read_text() == "mine\n"
        await send(app, pilot, "/init --force")
        await settle(app, pilot)
        assert "replaced" in notices(app)[-1] and (calc_repo / "AGENTS.md").read_text().startswith("# AGENTS.md")
