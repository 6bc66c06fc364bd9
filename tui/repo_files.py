"""Facts about the work tree the TUI shows (tracked files for `@path` completion, branch and dirty state).
Each runs git in a worker, never on the UI thread."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def tracked_files(root: Path) -> list[str]:
    out = _git(root, "ls-files", "-z")
    return sorted(p for p in (out or "").split("\0") if p)


def git_state(root: Path) -> tuple[str, bool]:
    """(branch or short commit, whether the work tree has changes); ("", False) outside git."""
    branch = (_git(root, "rev-parse", "--abbrev-ref", "HEAD") or "").strip()
    if branch == "HEAD":
        branch = (_git(root, "rev-parse", "--short", "HEAD") or "").strip()
    status = _git(root, "status", "--porcelain", "--untracked-files=normal")
    return branch, bool(status and status.strip())
