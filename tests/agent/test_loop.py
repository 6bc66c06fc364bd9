from __future__ import annotations

from pathlib import Path

from dsv4.agent.backends.script import ScriptedTurn
from dsv4.agent.backends.scripted import ScriptedBackend
from dsv4.agent.loop import Agent, AgentConfig
from dsv4.agent.permissions import Policy
from dsv4.agent.sessions import SessionStore
from dsv4.tools.base import Effect
from dsv4.tools.bash import Bash
from dsv4.tools.edit_file import EditFile
from dsv4.tools.memory_tools import Forget, Remember
from dsv4.tools.read_file import ReadFile
from dsv4.tools.run_tests import RunTests
from dsv4.tools.write_file import WriteFile
from dsv4.tools.toolbox import Toolbox
from dsv4.tools.workspace import Workspace


def make_agent(root: Path, home: Path, turns: list[dict], policy: Policy | None = None, **config) -> tuple[Agent, list]:
    events: list = []
    backend = ScriptedBackend([ScriptedTurn.model_validate(t) for t in turns])
    store = SessionStore(home / "sessions.db")
    session_id = store.create("repo-id", root, backend.model_id)
    agent = Agent(backend, Toolbox(Workspace(root)), store, session_id, "system prompt",
                  policy or Policy(mode="full-auto"), AgentConfig(**config), emit=events.append)
    return agent, events


def tool_texts(agent: Agent) -> list[str]:
    return [m.content or "" for m in agent.messages if m.role == "tool"]


def test_malformed_tool_calls_are_answered_and_counted(calc_repo, dsv4_home):
    turns = [
        {"tool_calls": [{"name": "read_file", "arguments": '{"path": "calc/__init__.py"'}]},  # bad JSON
        {"tool_calls": [{"name": "delete_everything", "arguments": {}}]},  # unknown tool
        {"tool_calls": [{"name": "read_file", "arguments": {"offset": 3}}]},  # missing required arg
        {"tool_calls": [{"name": "read_file", "arguments": "[1, 2]"}]},  # not an object
        {"content": "giving up politely"},
    ]
    agent, _ = make_agent(calc_repo, dsv4_home, turns)
    result = agent.run_turn("read it")
    assert result.status == "done" and result.malformed_calls == 4
    texts = tool_texts(agent)
    assert "not valid JSON" in texts[0]
    assert "unknown tool 'delete_everything'" in texts[1] and "read_file" in texts[1]
    assert "path: Field required" in texts[2]
    assert "must be a JSON object" in texts[3]


def test_identical_calls_repeated_past_the_limit_are_refused(calc_repo, dsv4_home):
    same = {"tool_calls": [{"name": "read_file", "arguments": {"path": "calc/__init__.py"}}]}
    agent, _ = make_agent(calc_repo, dsv4_home, [same] * 4 + [{"content": "ok"}], repeat_limit=3)
    agent.run_turn("loop")
    texts = tool_texts(agent)
    assert all("def add" in t for t in texts[:3])
    assert "already made 3 times" in texts[3]


def test_max_steps_budget_stops_the_turn(calc_repo, dsv4_home):
    step = {"tool_calls": [{"name": "list_files", "arguments": {}}]}
    agent, _ = make_agent(calc_repo, dsv4_home, [step] * 10, max_steps=2)
    result = agent.run_turn("go")
    assert result.status == "max_steps" and result.steps == 2


def test_backend_error_ends_the_turn_with_backend_error(calc_repo, dsv4_home):
    agent, _ = make_agent(calc_repo, dsv4_home, [])
    result = agent.run_turn("hello")
    assert result.status == "backend_error" and "no reply left" in (result.error or "")


def test_ask_mode_without_an_approver_denies_and_tells_the_model(calc_repo, dsv4_home):
    turns = [{"tool_calls": [{"name": "edit_file", "arguments": {"path": "calc/__init__.py", "old_string": "a - b",
                                                                  "new_string": "a + b"}}]},
             {"content": "could not edit"}]
    agent, _ = make_agent(calc_repo, dsv4_home, turns, policy=Policy(mode="ask"))
    result = agent.run_turn("fix")
    assert result.denied and result.denied[0]["tool"] == "edit_file"
    assert tool_texts(agent)[0].startswith("denied:")
    assert "a - b" in (calc_repo / "calc" / "__init__.py").read_text()


def test_approver_allows_and_events_report_the_file_change(calc_repo, dsv4_home):
    turns = [{"tool_calls": [{"name": "edit_file", "arguments": {"path": "calc/__init__.py", "old_string": "a - b",
                                                                  "new_string": "a + b"}}]},
             {"content": "fixed"}]
    agent, events = make_agent(calc_repo, dsv4_home, turns, policy=Policy(mode="ask"))
    asked = []
    agent.approver = lambda request: asked.append(request.tool_name) or True
    result = agent.run_turn("fix")
    assert asked == ["edit_file"] and result.files_changed == ["calc/__init__.py"]
    assert [e.path for e in events if e.type == "file_changed"] == ["calc/__init__.py"]
    assert result.summary == "fixed"


def test_headless_policy_denies_shell_but_allows_the_test_command():
    policy = Policy(mode="ask", headless=True, test_command="python -m pytest -q")
    assert policy.decide(Bash.effects, {"command": "rm -rf /"})[0] == "deny"
    assert policy.decide(Bash.effects, {"command": "python  -m pytest -q"})[0] == "allow"
    # A tool that runs code but whose `command` is no shell line (an MCP tool's argument) gets no exemption.
    assert policy.decide(frozenset({Effect.RUNS_COMMANDS}), {"command": "python -m pytest -q"})[0] == "deny"
    assert policy.decide(RunTests.effects, {})[0] == "allow"
    assert policy.decide(EditFile.effects, {})[0] == "allow"
    assert Policy(mode="ask", headless=True, allow_shell=True).decide(Bash.effects, {"command": "ls"})[0] == "allow"
    assert Policy(mode="auto-edit").decide(Bash.effects, {})[0] == "ask"
    assert Policy(mode="auto-edit").decide(WriteFile.effects, {})[0] == "allow"


def test_policy_acts_on_declared_effects_not_names():
    ask = Policy(mode="ask")
    assert ask.decide(Forget.effects, {})[0] == "ask"  # destructive: approved like an edit
    assert ask.decide(Remember.effects, {})[0] == "allow" and ask.decide(ReadFile.effects, {})[0] == "allow"
    assert Policy(mode="auto-edit").decide(Forget.effects, {})[0] == "allow"
    # Any tool that runs commands is a command to the policy, whatever it is called.
    assert ask.decide(frozenset({Effect.RUNS_COMMANDS}), {})[1] == "commands need approval"
