"""Checkpoints on real git repositories: capture, restore, undo, rewind, prune, and hands off the user's git."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from dsv4.tools.checkpoints import CheckpointError, CheckpointStore, legacy_store_name, rewind, undo_last_turn
from dsv4.tools.repo_identity import repo_identity
from tests.conftest import git


def user_git_state(root: Path) -> tuple[str, ...]:
    return (git(root, "status", "--porcelain=v1", "--untracked-files=all"), git(root, "rev-parse", "HEAD"),
            git(root, "stash", "list"), git(root, "branch", "--list"), git(root, "ls-files", "--stage"),
            git(root, "for-each-ref"))


def test_store_lives_under_dsv4_home(calc_repo, dsv4_home):
    store = CheckpointStore(calc_repo)
    assert store.dir == dsv4_home / "checkpoints" / repo_identity(calc_repo)
    assert not (calc_repo / ".git" / "refs" / "dsv4").exists()


def test_a_moved_clone_keeps_its_checkpoints(calc_repo, tmp_path):
    first = CheckpointStore(calc_repo).capture("s1", 1)
    moved = tmp_path / "elsewhere" / "calc"
    moved.parent.mkdir()
    calc_repo.rename(moved)
    assert [c.id for c in CheckpointStore(moved).list("s1")] == [first]


def test_path_keyed_stores_of_earlier_versions_are_migrated(calc_repo, dsv4_home):
    legacy = dsv4_home / "checkpoints" / legacy_store_name(calc_repo)
    old = CheckpointStore(calc_repo, store_dir=legacy)
    kept = old.capture("s1", 1)
    store = CheckpointStore(calc_repo)
    assert not legacy.exists() and [c.id for c in store.list("s1")] == [kept]
    # A second legacy store of the same repository (another clone's) is merged, not dropped.
    other = CheckpointStore(calc_repo, store_dir=legacy).capture("s2", 4)
    merged = CheckpointStore(calc_repo)
    assert not legacy.exists() and [c.id for c in merged.list("s2")] == [other]
    assert [c.id for c in merged.list("s1")] == [kept]


def test_capture_and_restore_cover_modified_new_deleted_and_bash_made_files(calc_repo):
    (calc_repo / "notes.txt").write_text("untracked but not ignored\n")
    before = user_git_state(calc_repo)
    store = CheckpointStore(calc_repo)
    first = store.capture("s1", 1)
    assert user_git_state(calc_repo) == before
    # A "turn": our edit, plus changes made by shell commands.
    (calc_repo / "calc" / "__init__.py").write_text("broken\n")
    subprocess.run("mkdir -p gen && echo made > gen/out.txt && rm notes.txt && chmod +x tests/test_calc.py",
                   shell=True, cwd=calc_repo, check=True)
    (calc_repo / "__pycache__").mkdir()
    (calc_repo / "__pycache__" / "x.pyc").write_bytes(b"ignored")
    restored = store.restore(first)
    assert restored == ["calc/__init__.py", "gen/out.txt", "notes.txt", "tests/test_calc.py"]
    assert (calc_repo / "calc" / "__init__.py").read_text().startswith("def add")
    assert (calc_repo / "notes.txt").read_text() == "untracked but not ignored\n"
    assert not (calc_repo / "gen").exists()
    assert not os.access(calc_repo / "tests" / "test_calc.py", os.X_OK)
    assert (calc_repo / "__pycache__" / "x.pyc").exists()  # ignored files are never touched
    assert user_git_state(calc_repo) == before


def test_files_ignored_at_capture_survive_when_gitignore_changes(calc_repo):
    (calc_repo / "cache.pyc").write_text("keep me")
    store = CheckpointStore(calc_repo)
    first = store.capture("s1", 1)
    (calc_repo / ".gitignore").write_text("")  # cache.pyc becomes visible
    store.restore(first)
    assert (calc_repo / "cache.pyc").read_text() == "keep me"
    assert (calc_repo / ".gitignore").read_text() == "__pycache__/\n*.pyc\n"


def test_undo_goes_back_one_changing_turn_at_a_time(calc_repo):
    source = calc_repo / "calc" / "__init__.py"
    original = source.read_text()
    store = CheckpointStore(calc_repo)
    store.capture("s1", 1)
    source.write_text("turn 1\n")
    store.capture("s1", 2)
    store.capture("s1", 3)  # turn 2 changed nothing
    source.write_text("turn 3\n")
    assert undo_last_turn(calc_repo, "s1") == ["calc/__init__.py"]
    assert source.read_text() == "turn 1\n"
    assert undo_last_turn(calc_repo, "s1") == ["calc/__init__.py"]  # skips the empty turn
    assert source.read_text() == original
    assert undo_last_turn(calc_repo, "s1") == []
    assert store.list("s1") == []


def test_rewind_n_turns_and_undo_of_the_undo(calc_repo):
    source = calc_repo / "calc" / "__init__.py"
    original = source.read_text()
    store = CheckpointStore(calc_repo)
    for turn in range(1, 4):
        store.capture("s1", turn)
        source.write_text(f"after turn {turn}\n")
    assert [c.turn for c in store.list("s1")] == [3, 2, 1]
    assert rewind(calc_repo, "s1", 2) == ["calc/__init__.py"]
    assert source.read_text() == "after turn 1\n"
    assert [c.turn for c in store.list("s1")] == [1]
    store.restore(store.safety()[0].id)  # the state just before the rewind
    assert source.read_text() == "after turn 3\n"
    with pytest.raises(CheckpointError):
        rewind(calc_repo, "s1", 5)
    rewind(calc_repo, "s1", 1)
    assert source.read_text() == original


def test_sessions_are_listed_separately(calc_repo):
    store = CheckpointStore(calc_repo)
    a = store.capture("alpha", 1)
    b = store.capture("beta/with odd:chars", 1)
    assert [c.id for c in store.list("alpha")] == [a]
    assert [c.id for c in store.list("beta/with odd:chars")] == [b]
    assert store.list("beta/with odd:chars")[0].session_id == "beta/with odd:chars"


def test_prune_by_count_and_age(calc_repo):
    store = CheckpointStore(calc_repo)
    for turn in range(5):
        (calc_repo / "f.txt").write_text(str(turn))
        store.capture("s1", turn)
    assert store.prune(max_age_days=30, max_count=2) == 3
    assert [c.turn for c in store.list("s1")] == [4, 3]
    time.sleep(0.05)
    assert store.prune(max_age_days=0.0000001, max_count=100) == 2
    assert store.list("s1") == []


def test_works_in_a_folder_that_is_not_a_git_repo(tmp_path):
    root = tmp_path / "plain"
    root.mkdir()
    (root / "a.txt").write_text("one")
    cid = CheckpointStore(root).capture("s", 1)
    (root / "a.txt").write_text("two")
    (root / "b.txt").write_text("new")
    assert CheckpointStore(root).restore(cid) == ["a.txt", "b.txt"]
    assert (root / "a.txt").read_text() == "one" and not (root / "b.txt").exists()


def test_symlinks_and_binary_files_round_trip(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    (root / "data.bin").write_bytes(bytes(range(256)))
    os.symlink("data.bin", root / "link")
    store = CheckpointStore(root)
    cid = store.capture("s", 1)
    (root / "data.bin").write_bytes(b"x")
    (root / "link").unlink()
    store.restore(cid)
    assert (root / "data.bin").read_bytes() == bytes(range(256)) and os.readlink(root / "link") == "data.bin"


def test_large_files_are_left_out_and_never_removed(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    (root / "small.txt").write_text("s")
    (root / "data [1].bin").write_bytes(b"x" * 5000)
    store = CheckpointStore(root, max_file_bytes=1000)
    cid = store.capture("s", 1)
    assert store.large_files() == ["data [1].bin"]
    (root / "data [1].bin").write_bytes(b"y")  # small now, but once large: still not ours to touch
    (root / "small.txt").write_text("changed")
    assert store.restore(cid) == ["small.txt"]
    assert (root / "data [1].bin").read_bytes() == b"y"
    later = store.capture("s", 2)
    assert "data [1].bin" not in store._git("ls-tree", "--name-only", later, work_tree=False).decode()
