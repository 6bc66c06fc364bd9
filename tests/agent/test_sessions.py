from __future__ import annotations

import pytest

from dsv4.agent.messages import Message, ToolCall, tool_result, user
from dsv4.agent.log_redaction import redact_title
from dsv4.agent.sessions import SessionStore


def test_messages_survive_reopen_and_dangling_tool_calls_are_repaired(tmp_path):
    store = SessionStore(tmp_path / "sessions.db")
    sid = store.create("repo", tmp_path, "m")
    call_a = ToolCall(id="a", name="read_file", arguments='{"path": "x"}')
    call_b = ToolCall(id="b", name="bash", arguments='{"command": "sleep 100"}')
    store.append_message(sid, 1, user("do it"))
    store.append_message(sid, 1, Message(role="assistant", content="", tool_calls=[call_a, call_b]))
    store.append_message(sid, 1, tool_result("a", "read_file", "contents"))
    store.close()

    reopened = SessionStore(tmp_path / "sessions.db")
    messages = reopened.messages(sid)
    assert [m.role for m in messages] == ["user", "assistant", "tool", "tool"]
    assert messages[3].tool_call_id == "b" and "interrupted" in (messages[3].content or "")
    info = reopened.get(sid)
    assert info.title == "do it" and info.turns == 1


def test_sessions_are_listed_per_repo_newest_first(tmp_path):
    store = SessionStore(tmp_path / "sessions.db")
    first = store.create("repo-1", tmp_path, "m")
    second = store.create("repo-1", tmp_path, "m")
    store.create("repo-2", tmp_path, "m")
    store.append_message(first, 1, user("later activity"))
    assert [s.id for s in store.list("repo-1")] == [first, second]
    assert store.latest("repo-1").id == first


TEXT = "The deploy password hint is zq7-marker-ultraviolet-42, keep it secret."


@pytest.mark.parametrize("title, expected", [
    ("Remember this: The deploy password hint is zq7-marker", "Remember this: [x]"),
    ("Note: " + TEXT + " ok", "Note: [x] ok"),
    ("Fix the bug in calc.py", "Fix the bug in calc.py"),
    ("ends with The deploy", "ends with The deploy"),  # under 12 characters of overlap: chance, left alone
])
def test_title_redaction(title: str, expected: str) -> None:
    assert redact_title(title, TEXT, "[x]") == expected
