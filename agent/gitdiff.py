"""The change a run made, as git sees it, without touching the user's index, branch or stash.

A headless run reports only what it changed: `working_tree_snapshot` records the tree as the run found it
(HEAD plus uncommitted and untracked, not ignored, files) and `diff_since` diffs against that, so
pre-existing changes, the report file CI is writing and our own `*.dsv4tmp` leftovers never appear.
`tracked_files` and `work_tree_state` are the front ends' questions to git, through the same hardened helper.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..tools.gitcmd import GitError, run_git

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
OWN_TEMP_FILES = ":(exclude,glob)**/*.dsv4tmp"
STATE_TIMEOUT_S = 10  # the TUI's status-bar queries: a slow repository shows no state rather than hangs


def head_commit(root: Path) -> str | None:
    head = run_git(root, "rev-parse", "--verify", "-q", "HEAD")
    return head.text.strip() if head.ok else None


def working_tree_snapshot(root: Path) -> str:
    """A tree object of the working copy as it is now (its blobs go into the repository's object store)."""
    with tempfile.TemporaryDirectory(prefix="dsv4-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        run_git(root, "read-tree", head_commit(root) or EMPTY_TREE, env=env, check=True)
        run_git(root, "add", "-A", "--", ".", OWN_TEMP_FILES, env=env, check=True)
        return run_git(root, "write-tree", env=env, check=True).text.strip()


def diff_since(root: Path, base: str, exclude: Sequence[Path] = ()) -> tuple[str, list[str]]:
    """Unified diff of the working copy against `base` (a commit or tree), and the changed paths; files
    under `exclude` (e.g. --patch-out inside the repository) are left out."""
    specs = [f":(exclude,literal){p.resolve().relative_to(root.resolve())}" for p in exclude
             if p.resolve().is_relative_to(root.resolve())]
    with tempfile.TemporaryDirectory(prefix="dsv4-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}

        def git(*args: str) -> str:
            return run_git(root, *args, env=env, check=True).stdout.decode("utf-8", "replace")
        git("read-tree", base)
        git("add", "-A", "--", ".", OWN_TEMP_FILES, *specs)
        patch = git("diff", "--cached", "--binary", "--no-color", base)
        names = git("diff", "--cached", "--name-only", "-z", base)
    return patch, [n for n in names.split("\0") if n]


def diff_against_head(root: Path) -> tuple[str, list[str]]:
    """Unified diff of the working tree (untracked, not ignored files included) against HEAD, and the changed paths."""
    return diff_since(root, head_commit(root) or EMPTY_TREE)


def _query(root: Path, *args: str) -> str | None:
    """Stdout of a read-only git question; None when git cannot answer (not a repository, no git, a bad config)."""
    try:
        result = run_git(root, *args, timeout_s=STATE_TIMEOUT_S)
    except GitError:  # git is not installed or the folder is gone: the front end shows no git facts
        return None
    return result.text if result.ok else None


def tracked_files(root: Path) -> list[str]:
    """The files git tracks in the repository at `root` (for `@path` completion); [] outside git."""
    return sorted(p for p in (_query(root, "ls-files", "-z") or "").split("\0") if p)


def work_tree_state(root: Path) -> tuple[str, bool]:
    """(branch or short commit, whether the work tree has changes); ("", False) outside git."""
    branch = (_query(root, "rev-parse", "--abbrev-ref", "HEAD") or "").strip()
    if branch == "HEAD":
        branch = (_query(root, "rev-parse", "--short", "HEAD") or "").strip()
    status = _query(root, "status", "--porcelain", "--untracked-files=normal")
    return branch, bool(status and status.strip())
