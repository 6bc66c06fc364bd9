"""`search`: regular expressions over the repository's files, in linear time and within a time limit.

Patterns run on RE2 (google-re2), which has no backtracking, so `(a+)+$` cannot take minutes; RE2 has
no lookaround and no backreferences, and says so. A search also stops after SEARCH_TIME_LIMIT_S with
what it found so far. Only files inside the repository are read: a committed symlink to a file or
folder outside is never followed (tools.listing.repo_files).
"""

from __future__ import annotations

import fnmatch
import time
from typing import Any, ClassVar

import re2
from pydantic import BaseModel, Field

from .base import READ_ONLY, ToolError, ToolResult
from .listing import repo_files
from .workspace import Workspace

MAX_MATCHES = 200
SEARCH_TIME_LIMIT_S = 10.0


def _options(never_nl: bool = False) -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would print every bad pattern to stderr
    options.never_nl = never_nl
    return options


def compile_pattern(pattern: str) -> tuple[Any, Any | None]:
    """The line pattern and a whole-file prefilter (None when the pattern cannot be one)."""
    try:
        line = re2.compile(pattern, options=_options())
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        hint = " (RE2 syntax: no lookaround (?=...)/(?<=...) and no backreferences \\1)" \
            if "perl operator" in reason or "escape sequence" in reason else ""
        raise ToolError(f"invalid regular expression {pattern!r}: {reason}{hint}") from None
    try:
        # Matching line by line is what the results show; a file with no match anywhere is skipped at once.
        whole = re2.compile("(?m)" + pattern, options=_options(never_nl=True))
    except re2.error:
        whole = None
    return line, whole


class SearchArgs(BaseModel):
    pattern: str = Field(description="Regular expression (RE2 syntax: Python-like, no lookaround or backreferences)")
    path: str = Field(default=".", description="Folder or file relative to the repository root")
    glob: str | None = Field(default=None, description="Only files matching this glob, e.g. '*.py'")


class Search:
    name: ClassVar[str] = "search"
    description: ClassVar[str] = "Search file contents with a regular expression; returns path:line: text for each match."
    effects = READ_ONLY
    Args = SearchArgs

    def run(self, args: SearchArgs, workspace: Workspace) -> ToolResult:
        regex, whole = compile_pattern(args.pattern)
        target = workspace.resolve(args.path)
        files = [target] if target.is_file() else repo_files(workspace.root, target)
        stop_at = time.monotonic() + SEARCH_TIME_LIMIT_S
        matches: list[str] = []
        total = 0
        stopped = False
        for path in files:
            if time.monotonic() > stop_at:
                stopped = True
                break
            rel = workspace.relative(path)
            if args.glob and not (fnmatch.fnmatch(rel, args.glob) or fnmatch.fnmatch(path.name, args.glob)):
                continue
            try:
                text = workspace.read_text(path)
            except (UnicodeError, OSError):
                continue  # binaries and unreadable files are not searchable text
            if whole is not None and not whole.search(text):
                continue
            for number, line in enumerate(text.splitlines(), start=1):
                if regex.search(line):
                    total += 1
                    if len(matches) < MAX_MATCHES:
                        matches.append(f"{rel}:{number}: {line[:300]}")
        body = "\n".join(matches) if matches else f"no matches for {args.pattern!r}"
        if total > MAX_MATCHES:
            body += f"\n[{total - MAX_MATCHES} more matches; narrow the pattern, path or glob]"
        if stopped:
            body += f"\n[search stopped after {SEARCH_TIME_LIMIT_S:g} s; results are partial: narrow the path or glob]"
        return ToolResult(text=body, summary=f"{total} matches", data={"matches": total, "stopped": stopped})
