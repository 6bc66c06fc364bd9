"""Whole-repository context: tree-sitter repo map, whole-repo loader with token budgets, file watching.

Public API (everything is importable from `dsv4.tools.repo_map`; heavy modules load on first use, so
importing this package costs nothing: tree_sitter, numpy and watchdog are imported only when used):

    build_repo_context(root, budget_tokens, count_tokens=None, mentioned=(), cache_dir=None,
                       repo_map=None) -> RepoContext
        The repository block (docs/architecture.md, "Context assembly"): the map, then whole files
        from least to most recently changed, each as `<file path="...">...</file>`. Never more than `budget_tokens` as counted by
        `count_tokens(text) -> int` (default `approx_tokens`: 3.5 UTF-8 bytes a token, which errs
        high). `mentioned`: paths and identifiers from the conversation; they personalise the ranking.
        `cache_dir`: where the SQLite tag cache lives (the agent passes `dsv4_home() / "repomap"`;
        None keeps it in memory). `repo_map`: a live RepoMap (e.g. `RepoWatcher.repo_map`) to reuse.
    RepoContext: .text .tokens .budget_tokens .included_whole .map_only .map_tokens .map_defs_shown
        .map_defs_total .fits_whole .skipped .oversized .build_s .timings .file_tokens,
        .explain() -> str, .to_json() -> dict, .diverges_at(newer) -> int (first differing char).
    RepoWatcher(root, on_change, repo_map=None, cache_dir=None, debounce_s=0.15, max_delay_s=2.0)
        .start()/.stop() or a context manager; calls on_change(Changes) from its own thread with
        .created .modified .deleted .paths (repo-relative POSIX paths), after updating the tag cache
        and `.repo_map` for exactly those files. `.idle(timeout)` waits for pending work.
    RepoMap(root, cache=None): .refresh() (cold or warm sync), .update(paths) -> Changes,
        .ranking(mentioned_files, mentioned_idents) -> Ranking, .render(budget, count_tokens, ...).
    TagCache(cache_dir | None), scan_repo(root) (in dsv4.tools.repo_scan), approx_tokens(text).

Prefix stability: the block's text depends only on the work tree and the mention set. Build it once
per session (mentions from the first prompt at most), keep it while the session runs (edits go into
the conversation), and rebuild when the watcher reports changes; `diverges_at` says how much of the
old prefix survives.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "build_repo_context": "loader", "RepoContext": "loader", "map_reserve": "loader",
    "RepoWatcher": "watcher",
    "RepoMap": "repomap", "Changes": "repomap", "MapText": "repomap", "RefreshStats": "repomap",
    "TagCache": "cache", "approx_tokens": "tokens", "Ranking": "rank",
    "FileTags": "tags", "Definition": "tags", "extract_tags": "tags",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
