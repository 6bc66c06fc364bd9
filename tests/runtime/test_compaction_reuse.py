"""After a compaction the llama engine still reuses the cached system prefix: the summary request starts with
the session's own system message and the compacted View keeps it byte-identical."""

from __future__ import annotations

import pytest

from dsv4.agent.backends.inprocess import InProcessBackend
from dsv4.agent.loop import Agent, AgentConfig
from dsv4.agent.permissions import Policy
from dsv4.agent.sessions import SessionStore
from dsv4.tools.read_file import ReadFile
from dsv4.tools.toolbox import Toolbox
from dsv4.tools.workspace import Workspace


@pytest.mark.slow  # real generations on the CPU: a minute or two on a shared machine
def test_the_system_prefix_is_reused_after_a_compaction(fast_engine, tmp_path):
    backend = InProcessBackend(fast_engine, name="smollm2-135m")
    store = SessionStore(tmp_path / "sessions.db")
    session_id = store.create("repo", tmp_path, backend.model_id)
    config = AgentConfig(max_steps=2)
    config.params.max_tokens = 8
    config.compaction.summary_max_tokens = 16
    system_text = "You are a careful assistant working in a repository. Rules: " + "answer briefly. " * 40
    agent = Agent(backend, Toolbox(Workspace(tmp_path), (ReadFile,)), store, session_id, system_text,
                  Policy(mode="full-auto"), config)
    # Requests longer than the task state keeps of them (REFINEMENT_CHARS): the compaction has something to drop and
    # so makes the View smaller (one that would not is not made).
    pasted = " ".join(f"line {n}: the cat sat on the mat." for n in range(100))
    for prompt in ("hello there", f"name a fact about cats in this text: {pasted}", "and about dogs?"):
        assert agent.run_turn(prompt).status == "done"
    compacted = agent.compact()
    assert compacted is not None and compacted.tokens_after < compacted.tokens_before and agent.context is not None and agent.context.exact  # counted by the tokenizer
    reused_before = fast_engine.stats.reused_tokens
    assert agent.run_turn("one more").status == "done"
    reused = fast_engine.stats.reused_tokens - reused_before
    assert reused >= len(fast_engine.tokenizer.encode(system_text))
