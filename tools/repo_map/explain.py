"""What went into the repository block and why, for people (`--explain`, `/context`) and for scripts."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .loader import RepoContext

SHOW_FILES = 40


def summary_line(ctx: RepoContext) -> str:
    return (f"{len(ctx.included_whole)} files whole, {len(ctx.map_only)} in the map only; "
            f"{ctx.tokens:,} of {ctx.budget_tokens:,} tokens; built in {ctx.build_s:.2f} s")


def explain_text(ctx: RepoContext, verbose: bool = True) -> str:
    """Always: what is in and its cost. Verbose (`--explain`): why, ranks, what was skipped, timings."""
    whole_tokens = sum(ctx.file_tokens.values())
    lines = [f"Repository {ctx.root}", summary_line(ctx),
             f"Map: {ctx.map_tokens:,} tokens ({ctx.map_defs_shown:,} of {ctx.map_defs_total:,} definitions). "
             f"Whole files: {whole_tokens:,} tokens.", ""]
    rank_note = (lambda p: f", rank {ctx.ranks.get(p, 0.0):.4f}") if verbose else (lambda p: "")
    lines.append("Loaded whole (least to most recently changed):")
    lines.extend(_listing([f"{p}  ({ctx.file_tokens.get(p, 0):,} tokens{rank_note(p)})" for p in ctx.included_whole],
                          None if verbose else SHOW_FILES))
    if ctx.map_only:
        lines.append("In the map only (most relevant first):")
        lines.extend(_listing([f"{p}{'  (' + rank_note(p)[2:] + ')' if verbose else ''}" for p in ctx.map_only],
                              None if verbose else SHOW_FILES))
    if ctx.oversized:
        lines.append("Over the size cap (never parsed or loaded whole):")
        lines.extend(_listing(ctx.oversized, SHOW_FILES))
    if not verbose:
        return "\n".join(lines) + "\n"
    lines.append("")
    if ctx.fits_whole:
        lines.append("Why: the whole repository fits the budget, so every readable file is loaded whole and the "
                     "map is an outline of all of them.")
    else:
        lines.append("Why: the repository does not fit the budget. Files are taken whole in order of relevance "
                     "(files mentioned in the conversation first, then by rank: a random walk over which files use "
                     "names defined in which) while they fit; the map shows the best-ranked definitions of the rest.")
    if ctx.skipped:
        reasons = Counter(reason for _, reason in ctx.skipped)
        lines.append("Skipped: " + ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items())))
        lines.extend(_listing([f"{p}  ({r})" for p, r in ctx.skipped], SHOW_FILES))
    steps = ", ".join(f"{name} {seconds:.3f} s" for name, seconds in ctx.timings.items())
    lines.append(f"Timings: {steps}; {ctx.parsed} files parsed, {ctx.from_cache} from the tag cache.")
    return "\n".join(lines) + "\n"


def _listing(items: list[str], limit: int | None) -> list[str]:
    cut = items if limit is None else items[:limit]
    shown = [f"  {item}" for item in cut]
    if len(items) > len(cut):
        shown.append(f"  … and {len(items) - len(cut)} more (--explain or --json lists all)")
    return shown


def explain_json(ctx: RepoContext) -> dict[str, object]:
    return {
        "root": str(ctx.root),
        "budget_tokens": ctx.budget_tokens,
        "tokens": ctx.tokens,
        "fits_whole": ctx.fits_whole,
        "map": {"tokens": ctx.map_tokens, "definitions_shown": ctx.map_defs_shown,
                "definitions_total": ctx.map_defs_total},
        "included_whole": [{"path": p, "tokens": ctx.file_tokens.get(p, 0), "rank": round(ctx.ranks.get(p, 0.0), 6)}
                           for p in ctx.included_whole],
        "map_only": [{"path": p, "rank": round(ctx.ranks.get(p, 0.0), 6)} for p in ctx.map_only],
        "oversized": ctx.oversized,
        "skipped": [{"path": p, "reason": r} for p, r in ctx.skipped],
        "build_s": round(ctx.build_s, 4),
        "timings_s": {k: round(v, 4) for k, v in ctx.timings.items()},
        "files_parsed": ctx.parsed,
        "files_from_cache": ctx.from_cache,
    }
