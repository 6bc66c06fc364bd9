"""A small real git repository for the session-driven memory evals (headless runs and AgentSession need one)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_repo(root: Path) -> Path:
    """`root` made a git repository with one committed file; returns it."""
    root.mkdir(parents=True)
    (root / "app.py").write_text("def main():\n    return 0\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.name=eval", "-c", "user.email=eval@example.test", "commit", "-qm", "initial"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    return root
