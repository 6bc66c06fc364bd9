"""AgentSession, the one public API of a running session: real repo, real stores under $DSV4_HOME, the scripted model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from dsv4.agent.backends.script import ScriptedTurn
from dsv4.agent.backends.scripted import ScriptedBackend
from dsv4.agent.config import load_settings
from dsv4.agent.errors import SessionCommandError
from dsv4.agent.repo import find_repo
from dsv4.agent.session import AgentSession, agent_config, list_sessions, session_policy
from dsv4.agent.sessions import SessionStore

from ..conftest import CALC_SOURCE

EDIT = {"content": "", "tool_calls": [{"name": "edit_file", "arguments": {
    "path": "calc/__init__.py", "old_string": "    return a - b", "new_string": "    return a + b"}}]}


def scripted(script: list[dict[str, Any]]) -> ScriptedBackend:
    return ScriptedBackend([ScriptedTurn.model_validate(t) for t in script])


def open_session(root: Path, script: list[dict[str, Any]] | ScriptedBackend, events: list[Any] | None = None,
                 **settings: Any) -> AgentSession:
    repo = find_repo(root)
    config = load_settings(repo.root, permission_mode="full-auto", **settings)
    backend = script if isinstance(script, ScriptedBackend) else scripted(script)
    return AgentSession.open(repo, config, session_policy(config), agent_config(config), backend=backend,
                             emit=events.append if events is not None else None)


def test_a_turn_then_undo_restores_the_files_and_logs_it(calc_repo, dsv4_home):
    events: list[Any] = []
    session = open_session(calc_repo, [EDIT, {"content": "fixed"}], events)
    result = session.run_turn("fix add")
    assert result.status == "done" and result.files_changed == ["calc/__init__.py"]
    assert [e.type for e in events if e.type in ("file_changed", "turn_done")] == ["file_changed", "turn_done"]
    assert session.usage.total_tokens > 0 and session.turn == 1 and session.model_id == "scripted"
    undone = session.undo()
    assert undone.restored == ["calc/__init__.py"] and not undone.conversation_rewound
    assert (calc_repo / "calc" / "__init__.py").read_text() == CALC_SOURCE
    store = SessionStore.open_default()
    assert [e["payload"] for e in store.events(session.session_id, "undo")] == [{"turns": 1, "restored": ["calc/__init__.py"]}]
    assert session.undo().restored == []  # nothing left to undo
    assert [s.id for s in list_sessions(session.repo)] == [session.session_id]


def test_resume_replays_the_history(calc_repo):
    first = open_session(calc_repo, [{"content": "hello"}])
    first.run_turn("hi")
    first.close(status="stopped")
    repo = find_repo(calc_repo)
    config = load_settings(repo.root)
    second = AgentSession.open(repo, config, session_policy(config), agent_config(config), resume_id=first.session_id,
                               backend=ScriptedBackend([]))
    assert second.resumed and [m.content for m in second.history()] == ["hi", "hello"]


def test_forget_purges_the_session_log_and_the_next_request(calc_repo, dsv4_home):
    marker = "MARKER-5b1e-session-forget"
    backend = scripted([{"content": "noted"}, {"content": "ok"}])
    session = open_session(calc_repo, backend)
    remembered = session.remember(f"the staging host is {marker}", key="staging")
    assert remembered.item.key == "staging" and marker in session.memory_view().text
    session.run_turn(f"note that the staging host is {marker}")
    done = session.forget("staging")
    assert done.ids == [remembered.item.id] and done.events_redacted >= 1
    assert marker not in session.memory_view().text
    session.run_turn("go on")
    assert marker not in str([m.model_dump() for m in backend.requests[-1]])  # the request after the forget
    for path in dsv4_home.rglob("*"):
        if path.is_file():
            assert marker.encode() not in path.read_bytes(), path


def test_memory_commands_report_errors_as_session_command_errors(calc_repo):
    session = open_session(calc_repo, [])
    with pytest.raises(SessionCommandError, match="no memory"):
        session.forget("m-000000000000")
    with pytest.raises(SessionCommandError):
        session.pin("m-000000000000")


def test_explain_context_names_the_files_changed_since(calc_repo):
    session = open_session(calc_repo, [])
    assert "files whole" in session.explain_context() and "Changed since" not in session.explain_context()
    seen: list[list[str]] = []
    session.watch_files(seen.append)
    try:
        (calc_repo / "calc" / "extra.py").write_text("X = 1\n")
        deadline = time.monotonic() + 10
        while "calc/extra.py" not in session.changed_files() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "calc/extra.py" in session.changed_files() and any("calc/extra.py" in paths for paths in seen)
        assert "Changed since this session's context was built (1): calc/extra.py" in session.explain_context()
    finally:
        session.close()


def test_the_syntax_gate_setting_reaches_the_tools(calc_repo):
    breaking = {"content": "", "tool_calls": [{"name": "edit_file", "arguments": {
        "path": "calc/__init__.py", "old_string": "    return a - b", "new_string": "    return (a - b"}}]}
    events: list[Any] = []
    session = open_session(calc_repo, [breaking, {"content": "done"}], events, syntax_gate="refuse")
    session.run_turn("break it")
    finished = [e for e in events if e.type == "tool_finished"]
    assert not finished[0].ok and "would break the syntax" in finished[0].summary
    assert (calc_repo / "calc" / "__init__.py").read_text() == CALC_SOURCE
