"""The repository the agent works in: its root and an identity that survives moves and re-clones."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from ..tools.gitcmd import run_git


class NotARepository(Exception):
    pass


@dataclass(frozen=True)
class Repo:
    root: Path
    identity: str  # root commit + normalised remote; a path hash only while the repo has neither


def _git(root: Path, *args: str) -> str | None:
    result = run_git(root, *args)
    return result.text.strip() if result.ok else None


def normalise_remote(url: str) -> str:
    """git@host:a/b.git, https://host/a/b and ssh://git@host/a/b all name the same repository."""
    url = url.strip().removesuffix("/").removesuffix(".git")
    url = re.sub(r"^[a-z+]+://", "", url)
    url = re.sub(r"^[^@/]+@", "", url)
    return url.replace(":", "/", 1).lower()


def find_repo(start: Path) -> Repo:
    top = _git(start, "rev-parse", "--show-toplevel")
    if top is None:
        raise NotARepository(f"{start} is not inside a git repository (run 'git init' first, or cd into a repo)")
    root = Path(top).resolve()
    roots = _git(root, "rev-list", "--max-parents=0", "HEAD")
    remote = _git(root, "remote", "get-url", "origin")
    parts = []
    if roots:
        parts.append("root:" + ",".join(sorted(roots.split())))
    if remote:
        parts.append("remote:" + normalise_remote(remote))
    if not parts:
        parts.append("path:" + str(root))
    identity = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
    return Repo(root=root, identity=identity)
