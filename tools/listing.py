"""Walking the repository the way git sees it: tracked and untracked files, minus what .gitignore ignores."""

from __future__ import annotations

from pathlib import Path

import pathspec

from .gitcmd import run_git

ALWAYS_SKIPPED = {".git", ".venv", "node_modules", "__pycache__", ".dsv4"}


def repo_files(root: Path, under: Path) -> list[Path]:
    """Files below `under`, sorted; uses git's own ignore rules when `root` is a git work tree.

    A path is listed only when it resolves (every component, not just the last) to a file inside `root`:
    a committed link to /etc/hostname, or a file below a linked folder outside, never reaches a tool.
    """
    return [path for path in _listed(root, under) if _inside(path, root)]


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a symlink loop
        return False


def _listed(root: Path, under: Path) -> list[Path]:
    listed = run_git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", str(under))
    if listed.ok:
        names = [name for name in listed.text.split("\0") if name]
        files = [root / name for name in names]
        return sorted(path for path in files if path.is_file() and not ALWAYS_SKIPPED.intersection(path.relative_to(root).parts))
    return _walk_with_gitignore(root, under)


def _walk_with_gitignore(root: Path, under: Path) -> list[Path]:
    gitignore = root / ".gitignore"
    lines = gitignore.read_text(errors="replace").splitlines() if gitignore.is_file() else []
    spec = pathspec.PathSpec.from_lines("gitwildmatch", lines)
    found = []
    for path in under.rglob("*"):
        rel = path.relative_to(root)
        if ALWAYS_SKIPPED.intersection(rel.parts) or not path.is_file():
            continue
        if spec.match_file(rel.as_posix()):
            continue
        found.append(path)
    return sorted(found)
