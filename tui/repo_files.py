"""Facts about the work tree the TUI shows (tracked files for `@path` completion, branch and dirty state).
Each runs git in a worker, never on the UI thread, and through the agent's hardened git helper: a plain
`git status` would run the repository's fsmonitor, hooks and filters."""

from __future__ import annotations

from ..agent.gitdiff import tracked_files, work_tree_state as git_state

__all__ = ["git_state", "tracked_files"]
