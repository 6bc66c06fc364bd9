from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from dsv4.tools.repo_map import Changes, RepoWatcher, TagCache
from dsv4.tools.repo_map.repomap import RepoMap

from ...conftest import git
from .conftest import commit_all, write


class Recorder:
    def __init__(self) -> None:
        self.batches: list[Changes] = []
        self.event = threading.Event()

    def __call__(self, changes: Changes) -> None:
        self.batches.append(changes)
        self.event.set()

    def merged(self) -> Changes:
        out = Changes()
        for b in self.batches:
            out.created |= b.created
            out.modified |= b.modified
            out.deleted |= b.deleted
        return out


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "watched"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write(root, ".gitignore", "*.log\n")
    write(root, "app.py", "def main():\n    return helper()\n")
    write(root, "lib/helper.py", "def helper():\n    return 1\n")
    commit_all(root)
    return root


def settle(watcher: RepoWatcher, recorder: Recorder, timeout: float = 10.0) -> None:
    # Events reach the watcher asynchronously: wait for the first batch, then for quiet.
    assert recorder.event.wait(timeout), "no change reported"
    assert watcher.idle(timeout)


def test_edit_create_delete_rename(repo: Path, tmp_path: Path) -> None:
    recorder = Recorder()
    with RepoWatcher(repo, recorder, cache_dir=tmp_path / "cache", debounce_s=0.05) as watcher:
        rmap = watcher.repo_map
        assert rmap is not None
        (repo / "lib/helper.py").write_text("def helper():\n    return 2\n\ndef extra():\n    pass\n")
        settle(watcher, recorder)
        assert recorder.merged().modified == {"lib/helper.py"}
        assert "extra" in {d.name for d in rmap.tags["lib/helper.py"].defs}

        recorder.batches.clear(), recorder.event.clear()
        write(repo, "lib/new_mod.py", "def brand_new():\n    pass\n")
        write(repo, "debug.log", "ignored by .gitignore\n")
        settle(watcher, recorder)
        assert recorder.merged().created == {"lib/new_mod.py"} and not recorder.merged().modified
        assert "brand_new" in {d.name for d in rmap.tags["lib/new_mod.py"].defs}

        recorder.batches.clear(), recorder.event.clear()
        (repo / "lib/new_mod.py").rename(repo / "lib/renamed.py")
        settle(watcher, recorder)
        merged = recorder.merged()
        assert merged.deleted == {"lib/new_mod.py"} and merged.created == {"lib/renamed.py"}
        assert "lib/new_mod.py" not in rmap.tags and "lib/renamed.py" in rmap.tags

        recorder.batches.clear(), recorder.event.clear()
        (repo / "app.py").unlink()
        settle(watcher, recorder)
        assert recorder.merged().deleted == {"app.py"}
        assert "app.py" not in rmap.files

        recorder.batches.clear(), recorder.event.clear()
        (repo / "lib").rename(repo / "pkg")  # a directory move: every file inside moves
        settle(watcher, recorder)
        merged = recorder.merged()
        assert {"lib/helper.py", "lib/renamed.py"} <= merged.deleted
        assert {"pkg/helper.py", "pkg/renamed.py"} <= merged.created

    # The cache saw every update: a fresh map on the same cache parses nothing.
    fresh = RepoMap(repo, TagCache(tmp_path / "cache"))
    assert fresh.refresh().parsed == 0


def test_touch_without_content_change_is_not_reported(repo: Path, tmp_path: Path) -> None:
    recorder = Recorder()
    with RepoWatcher(repo, recorder, cache_dir=tmp_path / "cache", debounce_s=0.05) as watcher:
        (repo / "app.py").write_text((repo / "app.py").read_text())
        time.sleep(0.5)
        assert watcher.idle()
        assert watcher.batches >= 1 and recorder.batches == []


def test_burst_of_1000_changes_is_coalesced(repo: Path, tmp_path: Path) -> None:
    recorder = Recorder()
    with RepoWatcher(repo, recorder, cache_dir=tmp_path / "cache", debounce_s=0.3, max_delay_s=5.0) as watcher:
        for i in range(1000):
            write(repo, f"gen/m{i}.py", f"def f{i}():\n    return {i}\n")
        for i in range(200):  # and edit some again at once, as a formatter would
            write(repo, f"gen/m{i}.py", f"def f{i}():\n    return {i + 1}\n")
        settle(watcher, recorder, timeout=60)
        merged = recorder.merged()
        assert merged.created == {f"gen/m{i}.py" for i in range(1000)}
        # Over a thousand raw events, a handful of batches at most (max_delay_s bounds each one).
        assert len(recorder.batches) <= 4, [len(b.paths) for b in recorder.batches]
        assert sum(len(b.paths) for b in recorder.batches) <= 1200
        assert len(watcher.repo_map.tags) == 1002  # type: ignore[union-attr]
        assert watcher.repo_map.tags["gen/m7.py"].refs == {} and "f7" in {  # type: ignore[union-attr]
            d.name for d in watcher.repo_map.tags["gen/m7.py"].defs}  # type: ignore[union-attr]


def test_two_watchers_share_one_observer(repo: Path, tmp_path: Path) -> None:
    first, second = Recorder(), Recorder()
    with RepoWatcher(repo, first, cache_dir=tmp_path / "c1", debounce_s=0.05) as w1, \
            RepoWatcher(repo, second, cache_dir=tmp_path / "c2", debounce_s=0.05) as w2:
        write(repo, "both.py", "x = 1\n")
        settle(w1, first)
        settle(w2, second)
    assert first.merged().created == second.merged().created == {"both.py"}
