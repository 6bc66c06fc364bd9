"""The repository the agent works in: its root and its identity (tools/repo_identity.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..tools.repo_identity import repo_identity, repository_root


class NotARepository(Exception):
    pass


@dataclass(frozen=True)
class Repo:
    root: Path
    identity: str  # root commit + normalised remote; a path hash only while the repo has neither


def find_repo(start: Path) -> Repo:
    root = repository_root(start)
    if root is None:
        raise NotARepository(f"{start} is not inside a git repository (run 'git init' first, or cd into a repo)")
    return Repo(root=root, identity=repo_identity(root))
