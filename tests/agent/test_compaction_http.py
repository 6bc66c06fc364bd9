"""Compaction over real HTTP on 127.0.0.1: the prefix the server receives stays byte-identical, a server's
context-length 400 (vLLM, SGLang, llama.cpp, OpenAI) is classified and recovered from, and a failing summary
request falls back to the digest."""

from __future__ import annotations

import json

import pytest
from pydantic import TypeAdapter

from dsv4.agent.backends.openai_compat import OpenAICompatBackend
from dsv4.agent.backends.script import ScriptedTurn
from dsv4.agent.backends.scripted import ScriptedBackend
from dsv4.agent.events import Error
from dsv4.agent.loop import Agent, AgentConfig
from dsv4.agent.permissions import Policy
from dsv4.agent.report import StreamEvent
from dsv4.agent.server_errors import is_context_overflow
from dsv4.agent.sessions import SessionStore
from dsv4.tools.toolbox import Toolbox
from dsv4.tools.workspace import Workspace

from ..conftest import run_cli
from .context_server import OVERFLOW_BODIES, ContextServer


def one_long_turn(steps: int, chars: int) -> list[dict]:
    """A single headless turn of many steps, each printing more than the window holds."""
    return [{"content": f"step {n}", "tool_calls": [{"name": "bash", "arguments": {"command": f"yes out{n} | head -c {chars}"}}]}
            for n in range(steps)] + [{"content": "all steps done"}]


def run_events(proc) -> list:
    return [TypeAdapter(StreamEvent).validate_json(line) for line in proc.stdout.splitlines()]


def prefixes(requests: list[dict]) -> set[str]:
    """The system message and the tools of each agent request, as the bytes the server received."""
    return {json.dumps([body["messages"][0], body["tools"]], sort_keys=True) for body in requests if body.get("tools")}


def test_one_long_headless_turn_is_compacted_and_the_prefix_never_changes(calc_repo):
    window = 5000
    with ContextServer(one_long_turn(30, chars=3 * 4 * window), window=window) as server:
        proc = run_cli(["run", "--headless", "print all the logs", "--base-url", server.base_url, "--model", "m",
                        "--context-window", str(window), "--allow-shell", "--output-format", "stream-json"],
                       calc_repo, timeout=300)
    events = run_events(proc)
    report = events[-1].report
    # calc_repo's own test fails on purpose (not_done); the run itself finished its turn
    assert report.error is None and report.summary == "all steps done", proc.stderr
    compacted = [e for e in events if e.type == "compacted"]
    assert len(compacted) >= 10 and all(e.source == "model" for e in compacted)
    assert server.refused == 0  # the meter compacted before any request could overflow
    assert len(prefixes(server.requests)) == 1  # system message and tools byte-identical in every request
    assert report.context.compactions == len(compacted) and report.context.window == window


@pytest.mark.parametrize("dialect", sorted(OVERFLOW_BODIES))
def test_a_servers_context_length_400_is_classified_and_recovered(calc_repo, dialect):
    # The client believes in a larger window than the server has: only the server's 400 can tell.
    with ContextServer(one_long_turn(3, chars=8000), window=4000, dialect=dialect) as server:
        proc = run_cli(["run", "--headless", "print", "--base-url", server.base_url, "--model", "m",
                        "--context-window", "60000", "--allow-shell", "--output-format", "stream-json"],
                       calc_repo, env={"DSV4_MAX_RETRIES": "0"}, timeout=300)
    events = run_events(proc)
    assert events[-1].report.summary == "all steps done", proc.stdout[-2000:]
    assert server.refused >= 1
    assert [e.trigger for e in events if e.type == "compacted"].count("overflow") == server.refused
    assert len(prefixes(server.requests)) == 1


def test_a_failing_summary_request_falls_back_to_the_digest(calc_repo):
    window = 5000
    with ContextServer(one_long_turn(6, chars=3 * 4 * window), window=window, summary=None) as server:
        proc = run_cli(["run", "--headless", "print", "--base-url", server.base_url, "--model", "m",
                        "--context-window", str(window), "--allow-shell", "--output-format", "stream-json"],
                       calc_repo, env={"DSV4_MAX_RETRIES": "0"}, timeout=300)
    events = run_events(proc)
    assert events[-1].report.summary == "all steps done", proc.stderr
    compacted = [e for e in events if e.type == "compacted"]
    assert compacted and all(e.source == "digest" and "summary request failed" in e.fallback_reason for e in compacted)
    after = [b for b in server.requests if b.get("tools") and "[Context compacted" in json.dumps(b["messages"][1:2])]
    assert after and all("a digest of the logged steps" in b["messages"][1]["content"] for b in after)


def test_the_replay_server_sees_one_prefix_across_compactions(calc_repo, replay, dsv4_home):
    window = 4000
    turns = []
    for n in range(40):
        turns += [{"content": "", "tool_calls": [{"name": "bash", "arguments": {"command": f"yes r{n} | head -c 9000"}}]},
                  {"content": f"turn {n} done"}]
    server = replay(turns)
    store = SessionStore(dsv4_home / "sessions.db")
    backend = OpenAICompatBackend(server.base_url, "replay", max_retries=0)
    session_id = store.create("repo", calc_repo, "replay")
    agent = Agent(backend, Toolbox(Workspace(calc_repo)), store, session_id, "system: the rules", Policy(mode="full-auto"),
                  AgentConfig(context_window=window), summariser=ScriptedBackend([], summary="what happened so far"))
    statuses = [agent.run_turn(f"turn {n}").status for n in range(40)]
    assert statuses == ["done"] * 40 and agent.compactions >= 10
    assert len(prefixes(server.requests)) == 1 and len(server.requests) == 80
    resumed = Agent(backend, Toolbox(Workspace(calc_repo)), store, session_id, "system: the rules", Policy(mode="full-auto"),
                    AgentConfig(context_window=window))
    assert resumed.messages == agent.messages  # the same View after a resume, without compacting again


@pytest.mark.parametrize("body,overflow", [
    ("This model's maximum context length is 8192 tokens. However, you requested 9000 tokens", True),
    ('{"error": {"code": "context_length_exceeded", "message": "too long"}}', True),
    ("the request exceeds the available context size, try increasing it", True),
    ("The input (9000 tokens) is longer than the model's context length (8192 tokens).", True),
    ("prompt is too long: 210000 tokens > 200000 maximum", True),
    ("invalid api key", False),
    ("model not found", False),
])
def test_overflow_bodies_are_classified(body, overflow):
    assert is_context_overflow(Error(kind="http", status_code=400, message=f"HTTP 400 from x: {body}")) is overflow


def test_only_client_errors_and_the_runtime_count_as_overflow():
    text = "maximum context length is 8192 tokens"
    assert not is_context_overflow(Error(kind="http", status_code=500, message=text))
    assert not is_context_overflow(Error(kind="connect", message=text))
    assert is_context_overflow(Error(kind="runtime", message="prompt of 9000 tokens does not fit the context window of "
                                                             "8192 tokens (model maximum 8192)"))


def test_a_summary_that_times_out_falls_back_to_the_digest(calc_repo, replay, dsv4_home):
    slow = replay([{"content": "a summary that comes too late"}], faults=["slow:2"])
    store = SessionStore(dsv4_home / "sessions.db")
    session_id = store.create("repo", calc_repo, "scripted")
    config = AgentConfig(context_window=50_000)
    config.compaction.summary_timeout_s = 0.3
    # A long command output to drop: a compaction that would not shrink the View is not made (nor summarised).
    turns = [{"content": "", "tool_calls": [{"name": "bash", "arguments": {"command": "yes log | head -c 8000"}}]},
             {"content": "read"}, {"content": "second"}]
    agent = Agent(ScriptedBackend([ScriptedTurn.model_validate(t) for t in turns]), Toolbox(Workspace(calc_repo)),
                  store, session_id, "system", Policy(mode="full-auto"), config,
                  summariser=OpenAICompatBackend(slow.base_url, "replay", max_retries=0))
    agent.run_turn("first")
    agent.run_turn("again")
    done = agent.compact()
    assert done is not None and done.source == "digest" and "timed out" in done.fallback_reason
