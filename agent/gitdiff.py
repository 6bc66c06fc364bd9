"""The change a run made, as git sees it, without touching the user's index, branch or stash."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def diff_against_head(root: Path) -> tuple[str, list[str]]:
    """Unified diff of the working tree (untracked, not ignored files included) against HEAD, and the changed paths."""
    head = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=root, capture_output=True, text=True)
    base = head.stdout.strip() if head.returncode == 0 else EMPTY_TREE
    with tempfile.TemporaryDirectory(prefix="dsv4-index-") as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        def git(*args: str) -> str:
            return subprocess.run(["git", *args], cwd=root, env=env, capture_output=True, text=True, check=True).stdout
        git("read-tree", base)
        git("add", "-A", ".")
        patch = git("diff", "--cached", "--binary", "--no-color", "--no-ext-diff", base)
        names = git("diff", "--cached", "--name-only", "--no-ext-diff", base)
    return patch, [n for n in names.splitlines() if n]
