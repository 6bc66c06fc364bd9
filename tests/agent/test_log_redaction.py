"""SessionStore.redact with a forget's redactions: spans in any escaping and case, the captured sentence, titles,
every JSON payload still valid. A real sessions.db in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

from dsv4.agent.log_redaction import probe
from dsv4.agent.messages import Message, ToolCall
from dsv4.agent.sessions import SessionStore
from dsv4.memory import bytescan, capture_preferences
from dsv4.memory.purge import Redaction
from dsv4.memory.spans import memory_spans

TEXT = "The café proxy is prøxy-qz41.internal"
SENTENCE = "From now on, always run the tests with pytest --hint=qz58k"
CAPTURED = capture_preferences(SENTENCE)[0].text  # the item's text, as capture wrote it


def redaction(item_id: str, text: str, session: str = "", turn: int | None = None, captured: bool = False) -> Redaction:
    return Redaction(item_id=item_id, text=text, spans=tuple(memory_spans(text)), session_id=session, turn=turn,
                     captured=captured)


def test_spans_go_from_every_payload_in_any_escaping_and_the_captured_sentence_whole(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "sessions.db")
    sid = store.create("repo", tmp_path, "m")
    store.append_message(sid, 1, Message(role="user", content=f"Fix the build. {SENTENCE}. Then stop."))
    store.append_message(sid, 2, Message(role="user", content="Where is PRØXY-QZ41.INTERNAL?"))
    call = ToolCall(id="c1", name="search", arguments=json.dumps({"pattern": "prøxy-qz41"}))  # \u00f8 escaped inside
    store.append_message(sid, 2, Message(role="assistant", content="", tool_calls=[call]))
    store.append(sid, 2, "headless_report", {"summary": "used pytest --hint=qz58k and prøxy-qz41.internal"})
    store.append(sid, 2, "usage", {"prompt_tokens": 5})
    assert bytescan.scan(tmp_path, ["qz41", "qz58k"])

    changed, sessions = store.redact([redaction("m-aaaaaaaaaaaa", TEXT),
                                      redaction("m-bbbbbbbbbbbb", CAPTURED, sid, 1, captured=True)])
    assert sessions == [sid] and changed >= 5
    assert [str(t) for t in bytescan.scan(tmp_path, ["qz41", "qz58k", SENTENCE, "prøxy"])] == []
    first, second, third = store.messages(sid)[:3]  # (and the "interrupted" answer of the unanswered call)
    assert first.content == "Fix the build. [forgotten memory m-bbbbbbbbbbbb] Then stop."
    assert second.content == "Where is [forgotten memory m-aaaaaaaaaaaa]?"
    assert json.loads(third.tool_calls[0].arguments) == {"pattern": "[forgotten memory m-aaaaaaaaaaaa]"}
    assert "[forgotten memory m-bbbbbbbbbbbb]" in store.get(sid).title
    report = store.events(sid, "headless_report")[0]["payload"]["summary"]
    assert "qz58k" not in report and "qz41" not in report
    assert store.events(sid, "usage")[0]["payload"] == {"prompt_tokens": 5}  # untouched rows stay as they are


def test_a_sentence_that_captured_something_else_stays(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "sessions.db")
    sid = store.create("repo", tmp_path, "m")
    store.append_message(sid, 1, Message(role="user", content=f"From now on, indent with tabs. {SENTENCE}."))
    store.redact([redaction("m-bbbbbbbbbbbb", CAPTURED, sid, 1, captured=True)])
    assert store.messages(sid)[0].content == "From now on, indent with tabs. [forgotten memory m-bbbbbbbbbbbb]"


def test_the_probe_is_an_ascii_run_escaping_cannot_split() -> None:
    assert probe("prøxy-qz41.internal") == "internal"
    assert probe("ｐｙｔｅｓｔ") == "pytest"  # full-width letters fold to ASCII
    assert probe("日本語") is None  # no ASCII run: every row is searched
