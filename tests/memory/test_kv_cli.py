"""`dsv4-code kv list | stats | clear` in a real subprocess over a real store (and without importing torch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from dsv4.memory import HashingEmbedder, MemoryStore, snapshots  # noqa: E402
from dsv4.memory.kv_store import SnapshotStore  # noqa: E402

from .test_kv_store import fake_snapshot, tokens  # noqa: E402

PROBE = ("import sys; from dsv4.agent.kv_cli import main; code = main(sys.argv[1:]); "
         "assert 'torch' not in sys.modules, 'kv commands must not load torch'; raise SystemExit(code)")


def kv(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DSV4_HOME": str(home)})


def test_list_stats_clear(dsv4_home: Path):
    memory = MemoryStore.open(dsv4_home, embedder=HashingEmbedder())
    store = SnapshotStore(memory)
    store.save(fake_snapshot(tokens(100, seed=1)))
    SnapshotStore(memory, disk_tier="cold").save(fake_snapshot(tokens(120, seed=2)))
    paths = [dsv4_home / s.path for s in snapshots.all_snapshots(memory)]
    orphan = paths[0].with_name("kv-orphan.safetensors")
    orphan.write_bytes(b"x")
    memory.close()

    listed = kv(dsv4_home, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert sorted((r["tier"], r["tokens"]) for r in rows) == [("cold", 120), ("hot", 100)]
    text = kv(dsv4_home, "list")
    assert text.returncode == 0 and all(r["id"] in text.stdout for r in rows)

    stats = kv(dsv4_home, "stats", "--json")
    assert stats.returncode == 0, stats.stderr
    doc = json.loads(stats.stdout)
    assert doc["disk"]["hot"]["snapshots"] == 1 and doc["disk"]["cold"]["tokens"] == 120
    assert doc["files_without_record"] == 1
    assert "files without a record: 1" in kv(dsv4_home, "stats").stdout

    cleared = kv(dsv4_home, "clear")
    assert cleared.returncode == 0 and "deleted 2 KV snapshots and 1 files" in cleared.stdout
    assert not any(p.exists() for p in [*paths, orphan])
    assert "no KV snapshots" in kv(dsv4_home, "list").stdout
