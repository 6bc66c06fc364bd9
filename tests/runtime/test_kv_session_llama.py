"""Engram KV in a session on the real SmolLM2 engine: a second session in the same repository restores the
system prefix from disk, and after a file in the repository block changes, reuse stops where its text begins
(a llama cache restores at any 64-token block boundary)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsv4.agent.backends.inprocess import InProcessBackend
from dsv4.agent.config import load_settings
from dsv4.agent.repo import find_repo
from dsv4.agent.session import AgentSession, agent_config, session_policy
from dsv4.memory.kv_chain import BLOCK_TOKENS

from ..conftest import git


@pytest.fixture(scope="module")
def backend(smollm_path: Path) -> InProcessBackend:
    from dsv4.runtime.engine.engine import LlamaEngine

    return InProcessBackend(LlamaEngine.load(smollm_path, precision="auto", context_window=4096, threads=2),
                            name="smollm2-135m")


def turn(root: Path, backend: InProcessBackend, prompt: str) -> dict:
    backend.drop_cache()  # as a new process: the engine's own cache is empty
    repo = find_repo(root)
    config = load_settings(repo.root, permission_mode="full-auto", max_output_tokens=2, max_steps=1, temperature=0.0)
    session = AgentSession.open(repo, config, session_policy(config), agent_config(config), backend=backend)
    assert session.run_turn(prompt).status == "done"
    kv, _ = session.kv_report(wait=True)
    session.close()
    return {"kv": kv, "prompt": list(backend.last_prompt.ids), "system_end": backend.last_prompt.system_end}


@pytest.mark.slow  # three prefills of the system prompt on the CPU: minutes on a shared machine
def test_second_session_restores_and_an_edit_stops_reuse_at_the_file(backend, tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    (root / "a_notes.md").write_text("# Notes\n" + "The calculator adds numbers and keeps a history.\n" * 20)
    (root / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "initial")

    first = turn(root, backend, "hello")
    assert first["kv"].restored_tokens == 0 and first["kv"].snapshots_saved == 1
    second = turn(root, backend, "hello again")
    kv = second["kv"]
    assert kv.tier == "disk-hot" and kv.restored_tokens >= second["system_end"] // BLOCK_TOKENS * BLOCK_TOKENS
    assert kv.prefill_tokens == len(second["prompt"]) - kv.restored_tokens

    (root / "calc.py").write_text("def add(a, b):\n    return b + a  # commutes\n")
    edited = turn(root, backend, "hello once more")
    changed_at = next(i for i, (a, b) in enumerate(zip(second["prompt"], edited["prompt"])) if a != b)
    assert changed_at < edited["system_end"]  # the file is in the repository block
    restored = edited["kv"].restored_tokens
    assert 0 < restored <= changed_at and changed_at - restored < BLOCK_TOKENS  # up to the file's block, not past


def test_the_live_llama_hot_budget_comes_from_config(tmp_path):
    """`kv_live_hot_mb` reaches a llama engine through the backend resolver (as it reaches V4's)."""
    from dsv4.agent.backends.resolve import make_backend

    git(tmp_path, "init", "-q", "-b", "main")
    tiered = make_backend(load_settings(tmp_path, model="smollm2-135m", kv_live_hot_mb=4))
    kv = tiered.engine.kv
    per_position = kv.block[:, :, :, 0].numel() * kv.block.element_size()  # 30 layers x K/V x 3 heads x 64, bf16
    assert kv.warm is not None and kv.warm.hot_positions == (4 << 20) // per_position == 182
    assert make_backend(load_settings(tmp_path, model="smollm2-135m")).engine.kv.warm is None
