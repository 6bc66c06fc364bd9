from __future__ import annotations

import fnmatch
import re
from typing import ClassVar

from pydantic import BaseModel, Field

from .base import READ_ONLY, ToolError, ToolResult
from .listing import repo_files
from .workspace import Workspace

MAX_MATCHES = 200


class SearchArgs(BaseModel):
    pattern: str = Field(description="Python regular expression to search for")
    path: str = Field(default=".", description="Folder or file relative to the repository root")
    glob: str | None = Field(default=None, description="Only files matching this glob, e.g. '*.py'")


class Search:
    name: ClassVar[str] = "search"
    description: ClassVar[str] = "Search file contents with a regular expression; returns path:line: text for each match."
    effects = READ_ONLY
    Args = SearchArgs

    def run(self, args: SearchArgs, workspace: Workspace) -> ToolResult:
        try:
            regex = re.compile(args.pattern)
        except re.error as exc:
            raise ToolError(f"invalid regular expression {args.pattern!r}: {exc}") from None
        target = workspace.resolve(args.path)
        files = [target] if target.is_file() else repo_files(workspace.root, target)
        matches: list[str] = []
        total = 0
        for path in files:
            rel = workspace.relative(path)
            if args.glob and not (fnmatch.fnmatch(rel, args.glob) or fnmatch.fnmatch(path.name, args.glob)):
                continue
            try:
                text = workspace.read_text(path)
            except (UnicodeError, OSError):
                continue  # binaries and unreadable files are not searchable text
            for number, line in enumerate(text.splitlines(), start=1):
                if regex.search(line):
                    total += 1
                    if len(matches) < MAX_MATCHES:
                        matches.append(f"{rel}:{number}: {line[:300]}")
        body = "\n".join(matches) if matches else f"no matches for {args.pattern!r}"
        if total > MAX_MATCHES:
            body += f"\n[{total - MAX_MATCHES} more matches; narrow the pattern, path or glob]"
        return ToolResult(text=body, summary=f"{total} matches", data={"matches": total})
