"""When each file last changed, for ordering whole files from least to most recently changed.

Clean tracked files use the time of the last commit that touched them (their mtime is only checkout
time); modified and untracked files use their mtime, which is later than any commit of theirs. Outside
git, mtime is all there is. Only the last `HISTORY_COMMITS` commits are read, so huge histories stay
cheap: files untouched for longer count as oldest, then go by path.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..gitcmd import run_git

HISTORY_COMMITS = 2000


def change_times(root: Path, paths: Iterable[str], mtimes: dict[str, int]) -> dict[str, float]:
    wanted = set(paths)
    committed = _commit_times(root, wanted)
    if committed is None:
        return {p: mtimes.get(p, 0) / 1e9 for p in wanted}
    dirty = _dirty(root)
    return {p: (max(committed.get(p, 0.0), mtimes.get(p, 0) / 1e9) if p in dirty else committed.get(p, 0.0))
            for p in wanted}


def _commit_times(root: Path, wanted: set[str]) -> dict[str, float] | None:
    proc = run_git(root, "log", f"--max-count={HISTORY_COMMITS}", "--no-renames", "--name-only", "-z",
                   "--format=%x01%ct")
    if not proc.ok:
        # Not a repository, or one without commits yet: everything is "dirty".
        return None if _not_git(root) else {}
    times: dict[str, float] = {}
    # Newest first: the first time a path appears is its last change.
    for chunk in proc.text.split("\x01")[1:]:
        stamp, _, names = chunk.partition("\n")
        when = float(stamp.strip("\0\n") or 0)
        for name in names.split("\0"):
            name = name.strip("\n")
            if name in wanted and name not in times:
                times[name] = when
    return times


def _dirty(root: Path) -> set[str]:
    entries = run_git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames").text.split("\0")
    return {entry[3:] for entry in entries if len(entry) > 3}


def _not_git(root: Path) -> bool:
    return not run_git(root, "rev-parse", "--is-inside-work-tree").ok
