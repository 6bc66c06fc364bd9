"""The TUI asks before the session opens when an untrusted repository's own config wants settings that need
trust (issue 12); the answer is recorded like `dsv4-code trust`, and the settings apply only when trusted."""

from __future__ import annotations

from dsv4.agent.backends.script import ScriptedTurn
from dsv4.agent.backends.scripted import ScriptedBackend
from dsv4.agent.config import load_config
from dsv4.agent.repo import find_repo
from dsv4.agent.trust import is_trusted, trust_repo
from dsv4.tui.app import DSV4App, settings_needing_trust
from dsv4.tui.screens.trust_prompt import TrustPrompt
from dsv4.tui.widgets.notice import Notice
from dsv4.tui.widgets.status_bar import StatusBar

from .helpers import ready, wait_until

REPO_CONFIG = 'permission_mode = "full-auto"\ntest_command = "python -m pytest -q -x"\nmax_steps = 7\n'


def app_for(root) -> DSV4App:
    """What `dsv4-code` in `root` builds (agent/cli/main.py:_tui), over the scripted model."""
    repo = find_repo(root)
    loaded = load_config(repo.root)
    return DSV4App(repo, loaded.settings, backend=ScriptedBackend([ScriptedTurn(content="hi")]),
                   needs_trust=settings_needing_trust(repo, loaded.ignored_repo_keys),
                   trusted_settings=lambda: load_config(repo.root, trusted=True).settings)


def notices(app) -> list[str]:
    return [str(n.text) for n in app.chat.query(Notice)]


async def test_trusting_from_the_prompt_records_it_and_applies_the_repository_config(calc_repo):
    (calc_repo / ".dsv4").mkdir()
    (calc_repo / ".dsv4" / "config.toml").write_text(REPO_CONFIG)
    app = app_for(calc_repo)
    assert app.needs_trust == ["permission_mode", "test_command"]
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, TrustPrompt), "the trust question")
        assert app.chat is None  # nothing opens before the answer: these settings choose the backend and mode
        await pilot.press("t")
        screen = await ready(app, pilot)
        assert screen.session.permission_mode == "full-auto" and screen.session.test_command == "python -m pytest -q -x"
        assert screen.query_one(StatusBar).mode == "full-auto"
        assert any(n.startswith("trusted this repository") for n in notices(app))
    assert is_trusted(find_repo(calc_repo).identity)
    assert app_for(calc_repo).needs_trust == []  # asked once: the next start applies it without a question


async def test_continuing_untrusted_ignores_those_settings_and_says_so(calc_repo):
    (calc_repo / ".dsv4").mkdir()
    (calc_repo / ".dsv4" / "config.toml").write_text(REPO_CONFIG)
    app = app_for(calc_repo)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, TrustPrompt), "the trust question")
        await pilot.press("escape")
        screen = await ready(app, pilot)
        assert screen.session.permission_mode == "ask" and screen.session.test_command != "python -m pytest -q -x"
        assert app.settings.max_steps == 7  # the harmless keys apply either way
        (said,) = [n for n in notices(app) if "not trusted" in n]
        assert "permission_mode, test_command" in said and "dsv4-code trust" in said
    assert not is_trusted(find_repo(calc_repo).identity)


async def test_an_mcp_json_alone_asks_and_a_trusted_or_plain_repository_does_not(calc_repo):
    repo = find_repo(calc_repo)
    assert settings_needing_trust(repo, []) == []
    (calc_repo / ".mcp.json").write_text('{"mcpServers": {}}')
    assert settings_needing_trust(repo, []) == [".mcp.json servers"]
    app = app_for(calc_repo)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, TrustPrompt), "the trust question")
        await pilot.press("enter")  # the focused answer is the safe one: Enter alone never trusts
        await ready(app, pilot)
        assert any(".mcp.json servers" in n for n in notices(app))
    trust_repo(repo.identity, repo.root)
    assert settings_needing_trust(repo, []) == []
