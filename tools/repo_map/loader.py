"""The repository block of the context: the repo map, then whole files, within a token budget.

If every readable file fits beside a map of all of them, all are loaded whole (the map then serves as a
table of contents). Otherwise the most relevant files (mentioned ones first, then by rank) are loaded
whole, greedily, into what the map's reserve leaves, and the map describes the rest. Whole files go
from least to most recently changed, so an edit moves one file to the end and the text before it stays
a valid prefix (docs/architecture.md, "Context assembly"). The text is deterministic for a given work
tree and mention set.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .cache import TagCache
from .recency import change_times
from .repomap import RepoMap
from .tokens import approx_tokens

MAP_SHARE = 16  # the map reserves budget/16 of the block, between 1024 and 8192 tokens
MAP_MIN, MAP_MAX = 1024, 8192


@dataclass
class RepoContext:
    root: Path
    text: str
    tokens: int
    budget_tokens: int
    included_whole: list[str]  # in block order: least to most recently changed
    map_only: list[str]  # readable files not loaded whole, most relevant first
    map_tokens: int
    map_defs_shown: int
    map_defs_total: int
    fits_whole: bool
    skipped: list[tuple[str, str]]
    oversized: list[str]
    build_s: float
    timings: dict[str, float] = field(default_factory=dict)
    parsed: int = 0
    from_cache: int = 0
    file_tokens: dict[str, int] = field(default_factory=dict)
    ranks: dict[str, float] = field(default_factory=dict)

    def diverges_at(self, newer: RepoContext) -> int:
        """Character offset where `newer.text` first differs: the prefix before it need not be re-read."""
        from .tags import common_prefix_length

        return common_prefix_length(self.text, newer.text)

    def explain(self) -> str:
        from .explain import explain_text
        return explain_text(self)

    def to_json(self) -> dict[str, object]:
        from .explain import explain_json
        return explain_json(self)


def map_reserve(budget: int) -> int:
    return max(min(MAP_MIN, budget // 2), min(MAP_MAX, budget // MAP_SHARE))


def build_repo_context(root: Path, budget_tokens: int, count_tokens: Callable[[str], int] | None = None,
                       mentioned: Iterable[str] = (), cache_dir: Path | None = None,
                       repo_map: RepoMap | None = None) -> RepoContext:
    """Build the repository block. `mentioned` mixes repo-relative paths and identifiers from the
    conversation: paths become personalised files, the rest identifiers. Pass `repo_map` (kept fresh
    by a RepoWatcher) to skip the refresh; otherwise one is built on a TagCache in `cache_dir`."""
    started = time.perf_counter()
    count = count_tokens or approx_tokens
    timings: dict[str, float] = {}
    rmap = repo_map
    stats = None
    if rmap is None:
        rmap = RepoMap(root, TagCache(cache_dir))
        stats = rmap.refresh()
        timings["scan_and_tags"] = stats.seconds
    mention_set = set(mentioned)
    m_files = {m for m in mention_set if m in rmap.files}
    m_idents = {m for m in mention_set - m_files if m.isidentifier()}

    t = time.perf_counter()
    ranking = rmap.ranking(m_files, m_idents)
    timings["rank"] = time.perf_counter() - t

    t = time.perf_counter()
    readable = [p for p, f in rmap.files.items() if not f.oversized]
    priority = sorted(readable, key=lambda p: (p not in m_files, -ranking.file_rank.get(p, 0.0), p))
    blocks: dict[str, str] = {}
    costs: dict[str, int] = {}
    header = _header(rmap.root.name)
    fixed = count(header) + count(_FILES_HEADING)
    reserve = map_reserve(budget_tokens)
    room = budget_tokens - fixed - reserve
    chosen: list[str] = []
    everything = True
    for path in priority:
        size = rmap.files[path].size
        if size / 32 > room:  # even a very dense file this size cannot fit; don't pay to count it
            everything = False
            continue
        blocks[path] = _file_block(path, rmap.root / path)
        costs[path] = count(blocks[path])
        if costs[path] <= room:
            chosen.append(path)
            room -= costs[path]
        else:
            everything = False
    timings["pack"] = time.perf_counter() - t

    t = time.perf_counter()
    chosen_set = set(chosen)
    exclude = () if everything else chosen_set
    map_budget = budget_tokens - fixed - sum(costs[p] for p in chosen)
    if everything:  # the map only repeats what the whole files show: keep it to its reserve
        map_budget = min(map_budget, reserve)
    whole_order = _recency_order(rmap, chosen)
    while True:
        rendered = rmap.render(map_budget, count, m_files, m_idents, exclude=exclude)
        text = _assemble(header, rendered.text, [blocks[p] for p in whole_order], everything)
        tokens = count(text)
        # Pieces counted apart can tokenise differently when joined; shrink the map until the whole fits.
        if tokens <= budget_tokens or map_budget <= 0:
            break
        map_budget -= tokens - budget_tokens
    timings["render"] = time.perf_counter() - t
    map_only = [p for p in priority if p not in chosen_set]
    oversized = sorted(p for p, f in rmap.files.items() if f.oversized)
    return RepoContext(root=rmap.root, text=text, tokens=tokens, budget_tokens=budget_tokens,
                       included_whole=whole_order, map_only=map_only, map_tokens=rendered.tokens,
                       map_defs_shown=rendered.defs_shown, map_defs_total=rendered.defs_total,
                       fits_whole=everything, skipped=list(rmap.skipped), oversized=oversized,
                       build_s=time.perf_counter() - started, timings=timings,
                       parsed=stats.parsed if stats else 0, from_cache=stats.from_cache if stats else 0,
                       file_tokens={p: costs[p] for p in chosen}, ranks=ranking.file_rank)


_FILES_HEADING = "\n## Files, least to most recently changed\n\n"


def _header(name: str) -> str:
    return f"# Repository {name}\n\n"


def _assemble(header: str, map_text: str, blocks: list[str], everything: bool) -> str:
    what = "definitions in all files" if everything else "definitions in files not loaded whole"
    parts = [header]
    if map_text:
        parts.append(f"## Map: {what}\n\n{map_text}")
    if blocks:
        parts.append(_FILES_HEADING)
        parts.append("\n".join(blocks))
    return "".join(parts)


def _file_block(path: str, abs_path: Path) -> str:
    text = abs_path.read_bytes().decode("utf-8", "replace")
    if text and not text.endswith("\n"):
        text += "\n"
    quoted = path.replace("&", "&amp;").replace('"', "&quot;")
    return f'<file path="{quoted}">\n{text}</file>\n'


def _recency_order(rmap: RepoMap, chosen: list[str]) -> list[str]:
    mtimes = {p: rmap.files[p].mtime_ns for p in chosen}
    when = change_times(rmap.root, chosen, mtimes)
    return sorted(chosen, key=lambda p: (when.get(p, 0.0), p))
