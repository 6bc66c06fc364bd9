"""The change a run made, as git sees it, without touching the user's index, branch or stash."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..tools.gitcmd import run_git

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def diff_against_head(root: Path) -> tuple[str, list[str]]:
    """Unified diff of the working tree (untracked, not ignored files included) against HEAD, and the changed paths."""
    head = run_git(root, "rev-parse", "--verify", "-q", "HEAD")
    base = head.text.strip() if head.ok else EMPTY_TREE
    with tempfile.TemporaryDirectory(prefix="dsv4-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}

        def git(*args: str) -> str:
            return run_git(root, *args, env=env, check=True).stdout.decode("utf-8", "replace")
        git("read-tree", base)
        git("add", "-A", ".")
        patch = git("diff", "--cached", "--binary", "--no-color", base)
        names = git("diff", "--cached", "--name-only", "-z", base)
    return patch, [n for n in names.split("\0") if n]
