"""Long sessions with a small window through AgentSession and the scripted backend: the context meter, compaction
that keeps the instructions, pinned memory, goal, changed files and open todos, resume, undo, forget."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import TypeAdapter

from dsv4.agent.backends.script import ScriptedTurn
from dsv4.agent.backends.scripted import ScriptedBackend
from dsv4.agent.config import Settings
from dsv4.agent.events import Compacted, CompactionSkipped, CompactionUndone, ContextUsage
from dsv4.agent.messages import Message
from dsv4.agent.repo import find_repo
from dsv4.agent.report import StreamEvent
from dsv4.agent.session import AgentSession, agent_config, session_policy
from dsv4.agent.sessions import SessionStore

from ..conftest import git, run_cli

WINDOW = 6000
RULE = "Always run migrations with `make migrate-safe`, never by hand."
PINNED = "The staging database is read-only on Fridays."
GOAL = "Write the progress notes and keep the todo list while you inspect the logs."
# A bash output per step large enough (about 600 tokens) that dropping a few steps saves more than the compaction
# adds (its preamble, the task state, the summary): a compaction that would not shrink the View is not made.
STEP_CHARS = 2400


def assert_valid(messages: list[Message]) -> None:
    """Every tool call answered right after its reply; no result without its call."""
    pending: set[str] = set()
    for message in messages:
        if message.role == "tool":
            assert message.tool_call_id in pending, message
            pending.discard(message.tool_call_id)
        else:
            assert not pending, f"unanswered calls {pending} before {message.role}"
            pending = {c.id for c in message.tool_calls} if message.role == "assistant" else set()


def long_turns(n_turns: int, big_chars: int) -> list[dict]:
    """Turn 1 writes a file and a todo list; every turn then prints an output several times the window."""
    first = [
        {"content": "", "tool_calls": [{"name": "write_file", "arguments": {"path": "notes/progress.md", "content": "started\n"}}]},
        {"content": "", "tool_calls": [{"name": "todo", "arguments": {"items": [
            {"text": "inspect the logs", "done": True}, {"text": "write the migration plan", "done": False},
            {"text": "ask about Friday deploys", "done": False}]}}]},
    ]
    turns = []
    for n in range(n_turns):
        steps = first if n == 0 else []
        big = {"content": f"step {n}", "reasoning_content": f"thinking about step {n}",
               "tool_calls": [{"name": "bash", "arguments": {"command": f"yes log{n} | head -c {big_chars}"}}]}
        turns += steps + [big, {"content": f"turn {n} done"}]
    return turns


def open_session(repo_root: Path, backend: ScriptedBackend, store: SessionStore, resume_id: str | None = None,
                 events: list | None = None, **settings) -> AgentSession:
    repo = find_repo(repo_root)
    config_settings = Settings(context_window=WINDOW, **settings)
    policy = session_policy(config_settings, headless=True, allow_shell=True)
    return AgentSession.open(repo, config_settings, policy, agent_config(config_settings), resume_id=resume_id,
                             emit=(events.append if events is not None else None), backend=backend, store=store)


def prepare_repo(calc_repo: Path, dsv4_home: Path) -> SessionStore:
    (calc_repo / "AGENTS.md").write_text(f"# Rules\n{RULE}\n")
    git(calc_repo, "add", "-A")
    git(calc_repo, "commit", "-qm", "rules")
    store = SessionStore(dsv4_home / "sessions.db")
    setup = open_session(calc_repo, ScriptedBackend([]), store)
    setup.pin(setup.remember(PINNED).item.id)
    setup.close()
    return store


def test_a_long_session_compacts_and_keeps_rules_memory_goal_files_and_todos(calc_repo, dsv4_home):
    store = prepare_repo(calc_repo, dsv4_home)
    n_turns = 200
    backend = ScriptedBackend([ScriptedTurn.model_validate(t) for t in long_turns(n_turns, big_chars=3 * 4 * WINDOW)],
                              summary="The agent wrote notes/progress.md and printed logs.")
    events: list = []
    session = open_session(calc_repo, backend, store, events=events)
    results = [session.run_turn(GOAL if n == 0 else f"continue with part {n}") for n in range(n_turns)]
    assert [r.status for r in results] == ["done"] * n_turns  # every turn finishes, none stuck on the window
    compacted = [e for e in events if isinstance(e, Compacted)]
    assert len(compacted) >= n_turns // 2
    assert all(e.tokens_after < e.tokens_before for e in compacted)
    usage = [e for e in events if isinstance(e, ContextUsage)]
    assert all(e.window == WINDOW and e.used <= WINDOW for e in usage)  # no request was sent that did not fit

    first_system = backend.requests[0][0]
    for request in backend.requests:
        assert request[0] == first_system  # the system message never changes, byte for byte
        assert_valid(request)
    assert RULE in first_system.content and PINNED in first_system.content
    after = [r for r in backend.requests if len(r) > 1 and (r[1].content or "").startswith("[Context compacted")]
    assert len(after) >= len(compacted)
    for request in after:
        state = request[1].content
        assert GOAL in state and "notes/progress.md (created)" in state
        assert "- [ ] write the migration plan" in state and "- [ ] ask about Friday deploys" in state
        assert "inspect the logs" not in state.split("Open todo items:")[1]  # done items are not open
        assert "The agent wrote notes/progress.md" in state  # the model's summary
        kept = [m for m in request[2:] if m.role == "assistant" and m.tool_calls]
        assert all(m.reasoning_content for m in kept)  # kept steps keep their reasoning_content
    # The summary request is the session's own system message plus the request, without tools.
    assert backend.summary_requests and all(r[0] == first_system for r in backend.summary_requests)

    view = session._loop.messages
    session.close()
    resumed = open_session(calc_repo, ScriptedBackend([]), store, resume_id=session.session_id)
    assert resumed._loop.messages == view  # resume folds the same View from the log; it does not compact
    assert resumed.compactions == 0


def test_compact_undo_restores_the_view_before_it(calc_repo, dsv4_home):
    store = prepare_repo(calc_repo, dsv4_home)
    backend = ScriptedBackend([ScriptedTurn.model_validate(t) for t in long_turns(4, big_chars=STEP_CHARS)], summary="short")
    session = open_session(calc_repo, backend, store)
    for n in range(4):
        session.run_turn(f"part {n}")
    before = session._loop.messages
    first = session.compact(focus="the todo list")
    assert isinstance(first, Compacted) and first.trigger == "manual" and first.focus == "the todo list"
    once = session._loop.messages
    assert len(once) < len(before) and "focus on: the todo list" in once[1].content
    second = session.compact()
    assert second is not None and session._loop.messages != once
    undone = session.compact_undo()
    assert isinstance(undone, CompactionUndone) and undone.id == second.id and undone.restored_id == first.id
    assert session._loop.messages == once
    session.compact_undo()
    assert session._loop.messages == before
    assert session.compact_undo() is None
    session.close()
    resumed = open_session(calc_repo, ScriptedBackend([]), store, resume_id=session.session_id)
    assert resumed._loop.messages == before  # the undo is logged: the View stays restored after a resume


def test_compacting_a_tiny_conversation_keeps_it_and_says_so(calc_repo, dsv4_home):
    """/compact on a short conversation used to make the context bigger (4,605 -> 6,823 tokens seen): the task state
    and the preamble outweighed the steps dropped. Such a compaction is not made, and the session goes on."""
    store = SessionStore(dsv4_home / "sessions.db")
    backend = ScriptedBackend([ScriptedTurn.model_validate(t) for t in long_turns(3, big_chars=40)])
    events: list = []
    session = open_session(calc_repo, backend, store, events=events)
    for n in range(2):
        session.run_turn(f"part {n}")
    view, used = session._loop.messages, session.context().used
    assert session.compact() is None
    skipped = [e for e in events if isinstance(e, CompactionSkipped)]
    assert len(skipped) == 1 and skipped[0].trigger == "manual" and skipped[0].reason.startswith("nothing to compact")
    assert skipped[0].tokens_after is not None and skipped[0].tokens_after >= skipped[0].tokens_before
    assert backend.summary_requests == [] and skipped[0].summary_tokens == 0  # no summary is paid for in vain
    assert session._loop.messages == view and session.context().used == used
    assert store.events(session.session_id, "compacted") == [] and session.compactions == 0
    assert session.run_turn("part 2").status == "done"


def test_a_summary_longer_than_what_it_replaces_gives_way_to_the_digest(calc_repo, dsv4_home):
    store = SessionStore(dsv4_home / "sessions.db")
    rambling = "The agent looked at the logs again and again. " * 400  # ~4,600 tokens for ~1,800 dropped
    backend = ScriptedBackend([ScriptedTurn.model_validate(t) for t in long_turns(4, big_chars=STEP_CHARS)],
                              summary=rambling)
    events: list = []
    session = open_session(calc_repo, backend, store, events=events)
    for n in range(4):
        session.run_turn(f"part {n}")
    done = session.compact()
    assert done is not None and done.source == "digest" and done.tokens_after < done.tokens_before
    assert done.fallback_reason == "the model's summary would not make the context smaller"
    assert backend.summary_requests and done.summary_tokens > 0  # the summary was asked for and paid, then not used
    assert rambling.strip() not in session._loop.messages[1].content and "called bash" in session._loop.messages[1].content


def test_an_empty_summary_falls_back_to_the_digest(calc_repo, dsv4_home):
    store = prepare_repo(calc_repo, dsv4_home)
    backend = ScriptedBackend([ScriptedTurn.model_validate(t) for t in long_turns(3, big_chars=STEP_CHARS)], summary="")
    events: list = []
    session = open_session(calc_repo, backend, store, events=events)
    for n in range(3):
        session.run_turn(f"part {n}")
    done = session.compact()
    assert done is not None and done.source == "digest" and "empty" in (done.fallback_reason or "")
    text = session._loop.messages[1].content
    assert "a digest of the logged steps" in text and "called bash" in text and "write_file" in text


def test_undo_tells_the_model_which_edits_were_reverted(calc_repo, dsv4_home):
    store = SessionStore(dsv4_home / "sessions.db")
    turns = [{"content": "", "tool_calls": [{"name": "edit_file", "arguments": {
                 "path": "calc/__init__.py", "old_string": "    return a - b", "new_string": "    return a + b"}}]},
             {"content": "fixed"}, {"content": "ok"}]
    backend = ScriptedBackend([ScriptedTurn.model_validate(t) for t in turns])
    session = open_session(calc_repo, backend, store)
    session.run_turn("fix add")
    assert session.undo().restored == ["calc/__init__.py"]
    session.run_turn("and now?")
    note = [m for m in backend.requests[-1] if m.role == "user" and "undid" in (m.content or "")]
    assert len(note) == 1 and "calc/__init__.py" in note[0].content and "reverted" in note[0].content


def test_cancel_between_two_tool_calls_leaves_a_valid_request(calc_repo, dsv4_home):
    store = SessionStore(dsv4_home / "sessions.db")
    turns = [{"content": "", "reasoning_content": "two reads", "tool_calls": [
                 {"name": "read_file", "arguments": {"path": "calc/__init__.py"}},
                 {"name": "read_file", "arguments": {"path": "tests/test_calc.py"}}]},
             {"content": "ok"}]
    backend = ScriptedBackend([ScriptedTurn.model_validate(t) for t in turns])
    session: AgentSession | None = None

    def cancel_after_first_call(event) -> None:
        if event.type == "tool_finished":
            session.cancel()

    session = open_session(calc_repo, backend, store)
    session._loop.emit = cancel_after_first_call
    assert session.run_turn("read both").status == "cancelled"
    session._loop.emit = lambda event: None
    assert session.run_turn("go on").status == "done"
    request = backend.requests[-1]
    assert_valid(request)
    results = [m.content for m in request if m.role == "tool"]
    assert "def add" in results[0] and results[1].startswith("cancelled:")
    assert [m.reasoning_content for m in request if m.role == "assistant"][0] == "two reads"


def test_without_compaction_the_view_is_the_logged_conversation(calc_repo, dsv4_home):
    store = SessionStore(dsv4_home / "sessions.db")
    turns = [{"content": "", "tool_calls": [{"name": "read_file", "arguments": {"path": "calc/__init__.py"}}]},
             {"content": "read it"}]
    backend = ScriptedBackend([ScriptedTurn.model_validate(t) for t in turns])
    session = open_session(calc_repo, backend, store)
    session.run_turn("look")
    assert session._loop.messages[1:] == store.messages(session.session_id)


def test_stream_json_and_the_report_carry_the_context(calc_repo, write_script):
    script = write_script(long_turns(1, big_chars=3 * 4 * 3000)[2:])  # one big bash output, then the answer
    proc = run_cli(["run", "--headless", "print the logs", "--script", str(script), "--context-window", "3000",
                    "--compact-at", "0.5", "--allow-shell", "--output-format", "stream-json"], calc_repo)
    events = [TypeAdapter(StreamEvent).validate_json(line) for line in proc.stdout.splitlines()]
    kinds = [e.type for e in events]
    assert "context_usage" in kinds and "compacted" in kinds, proc.stderr
    report = events[-1].report
    assert report.context is not None and report.context.window == 3000 and report.context.compactions >= 1
    schema = json.dumps(json.loads(run_cli(["schema", "events"], calc_repo).stdout))
    for kind in ("compacted", "compaction_undone", "context_usage", "compaction_skipped"):
        assert f'"const": "{kind}"' in schema


MARKER = "MARKER-3c9e-forget-me"


def test_a_forget_inside_a_compacted_range_replaces_the_summary_with_a_fresh_digest(calc_repo, dsv4_home):
    store = SessionStore(dsv4_home / "sessions.db")
    fact = f"Deploy target is staging-{MARKER}"
    turns = [{"content": "", "tool_calls": [{"name": "remember", "arguments": {"text": fact, "key": "deploy"}}]},
             {"content": "remembered"}] + long_turns(3, big_chars=STEP_CHARS)[2:] + [{"content": "still fine"}]
    # The model's summary paraphrases the fact: no redaction of the exact text can find it.
    paraphrase = f"the deploy goes to STAGING-{MARKER.upper()}"
    backend = ScriptedBackend([ScriptedTurn.model_validate(t) for t in turns], summary=f"Noted that {paraphrase}.")
    session = open_session(calc_repo, backend, store)
    session.run_turn(f"Remember this: {fact}")
    for n in range(3):
        session.run_turn(f"part {n}")
    done = session.compact()
    assert done is not None and done.source == "model" and paraphrase in session._loop.messages[1].content

    session.forget("deploy")
    view = json.dumps([m.model_dump() for m in session._loop.messages])
    payloads = json.dumps([e["payload"] for e in store.events(session.session_id, "compacted")])
    for text in (MARKER, MARKER.upper()):
        assert text not in view and text not in payloads
    compaction = store.events(session.session_id, "compacted")[-1]["payload"]
    assert compaction["source"] == "digest" and compaction["id"] == done.id
    assert "a digest of the logged steps" in session._loop.messages[1].content
    assert session.run_turn("part 3").status == "done"


def test_a_session_stuck_before_resumes_unchanged_and_compacts_on_the_next_turn(calc_repo, dsv4_home):
    # A log written before compaction existed: far longer than the window, no snapshot, no compaction.
    store = SessionStore(dsv4_home / "sessions.db")
    session_id = store.create(find_repo(calc_repo).identity, calc_repo, "scripted")
    for n in range(12):
        store.append_message(session_id, n + 1, Message(role="user", content=f"request {n}"))
        store.append_message(session_id, n + 1, Message(role="assistant", content="x" * 4000))
    events: list = []
    session = open_session(calc_repo, ScriptedBackend([ScriptedTurn(content="back on track")]), store,
                           resume_id=session_id, events=events)
    assert store.events(session_id, "compacted") == [] and session.context().share > 1  # opening never compacts
    result = session.run_turn("continue")
    assert result.status == "done" and result.summary == "back on track" and result.compactions >= 1
    assert [e.trigger for e in events if isinstance(e, Compacted)][0] == "auto"
    assert "request 0" in session._loop.messages[1].content  # the first request is the goal


def test_memory_pinned_during_the_session_is_in_the_compacted_view(calc_repo, dsv4_home):
    store = SessionStore(dsv4_home / "sessions.db")
    backend = ScriptedBackend([ScriptedTurn.model_validate(t) for t in long_turns(3, big_chars=STEP_CHARS)])
    session = open_session(calc_repo, backend, store)
    session.run_turn("part 0")
    late = "Release notes go in CHANGES.md, newest first."
    session.pin(session.remember(late).item.id)
    assert late not in session._loop.messages[0].content  # the system message stays as it was
    session.run_turn("part 1")
    session.compact()
    assert session._loop.messages[0].content == backend.requests[0][0].content
    assert "Memory pinned since the session started" in session._loop.messages[1].content
    assert late in session._loop.messages[1].content
