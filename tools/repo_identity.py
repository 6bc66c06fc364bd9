"""A repository's identity: its root commit(s) and normalised `origin` remote, so it survives moves and re-clones.

The one identity the product uses: sessions, memory scopes and checkpoints are all keyed by it
(docs/architecture.md, "Where each contract lives"). A folder with neither a commit nor a remote (a fresh
`git init`, or no git at all) falls back to a hash of its path until it has one.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from .gitcmd import run_git


def _git(root: Path, *args: str) -> str | None:
    result = run_git(root, *args)
    return result.text.strip() if result.ok else None


def normalise_remote(url: str) -> str:
    """git@host:a/b.git, https://host/a/b and ssh://git@host/a/b all name the same repository."""
    url = url.strip().removesuffix("/").removesuffix(".git")
    url = re.sub(r"^[a-z+]+://", "", url)
    url = re.sub(r"^[^@/]+@", "", url)
    return url.replace(":", "/", 1).lower()


def repository_root(start: Path) -> Path | None:
    """The top of the git work tree holding `start`, or None outside any."""
    top = _git(start, "rev-parse", "--show-toplevel")
    return Path(top).resolve() if top is not None else None


def repo_identity(root: Path) -> str:
    """16 hex digits from the root commits and the `origin` remote; a path hash only while there are neither."""
    root = Path(root).resolve()
    roots = _git(root, "rev-list", "--max-parents=0", "HEAD") if root.is_dir() else None
    remote = _git(root, "remote", "get-url", "origin") if root.is_dir() else None
    parts = []
    if roots:
        parts.append("root:" + ",".join(sorted(roots.split())))
    if remote:
        parts.append("remote:" + normalise_remote(remote))
    if not parts:
        parts.append("path:" + str(root))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
