"""kill -9 during writes: a writer process is killed again and again in the middle of atomic writes, and
the target file must always be one complete version (never a mix or a truncation)."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import time
from pathlib import Path

import pytest

from dsv4.tools.workspace import TEMP_SUFFIX, Workspace

BODY_REPEAT = 40_000  # ~300 KB per version, so a kill often lands while the temp file is being written


def version(n: int) -> str:
    body = f"version {n};" * BODY_REPEAT
    return f"{hashlib.sha256(body.encode()).hexdigest()}\n{body}"


def is_complete(text: str) -> bool:
    digest, _, body = text.partition("\n")
    return hashlib.sha256(body.encode()).hexdigest() == digest


def writer(root: Path, start: int) -> None:
    """The child: write new versions forever (until killed)."""
    workspace = Workspace(root)
    n = start
    while True:
        workspace.write_text(root / "target.txt", version(n))
        n += 1


def kill_loop(tmp_path: Path, kills: int) -> dict[str, int]:
    root = tmp_path / "repo"
    root.mkdir()
    Workspace(root).write_text(root / "target.txt", version(0))
    rng = random.Random(1234)
    temps_seen = 0
    for k in range(kills):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            try:
                writer(root, (k + 1) * 1000)
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0.0005, 0.02))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        target = (root / "target.txt").read_text()
        assert is_complete(target), f"kill {k}: target.txt is half-written"
        leftovers = [p for p in root.iterdir() if p.name != "target.txt"]
        assert all(p.name.endswith(TEMP_SUFFIX) for p in leftovers)
        assert len(leftovers) <= 1  # the killed writer's temp file at most: earlier ones were swept
        temps_seen += bool(leftovers)
    # The next write cleans up after the dead writer.
    Workspace(root).write_text(root / "target.txt", version(1))
    assert sorted(p.name for p in root.iterdir()) == ["target.txt"]
    return {"kills": kills, "killed_mid_write": temps_seen}


def test_kill_9_during_writes_never_leaves_a_half_written_file(tmp_path):
    stats = kill_loop(tmp_path, 200)
    # Most kills must have landed inside a write, or this test would prove nothing.
    assert stats["killed_mid_write"] >= 50, stats


@pytest.mark.slow
def test_kill_9_during_writes_many_times(tmp_path):
    stats = kill_loop(tmp_path, 2000)
    assert stats["killed_mid_write"] >= 500, stats
