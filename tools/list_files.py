from __future__ import annotations

import fnmatch
from typing import ClassVar

from pydantic import BaseModel, Field

from .base import READ_ONLY, ToolError, ToolResult
from .listing import repo_files
from .workspace import Workspace

MAX_ENTRIES = 1000


class ListFilesArgs(BaseModel):
    path: str = Field(default=".", description="Folder relative to the repository root")
    glob: str | None = Field(default=None, description="Only paths matching this glob, e.g. '**/*.py' or '*.md'")


class ListFiles:
    name: ClassVar[str] = "list_files"
    description: ClassVar[str] = "List files in the repository (respects .gitignore)."
    effects = READ_ONLY
    Args = ListFilesArgs

    def run(self, args: ListFilesArgs, workspace: Workspace) -> ToolResult:
        folder = workspace.resolve(args.path)
        if not folder.is_dir():
            raise ToolError(f"{args.path}: not a folder")
        rels = [workspace.relative(p) for p in repo_files(workspace.root, folder)]
        if args.glob:
            pattern = args.glob
            rels = [r for r in rels if fnmatch.fnmatch(r, pattern) or fnmatch.fnmatch(r.rsplit("/", 1)[-1], pattern)
                    or (pattern.startswith("**/") and fnmatch.fnmatch(r, pattern[3:]))]
        shown = rels[:MAX_ENTRIES]
        text = "\n".join(shown) if shown else "(no files)"
        if len(rels) > MAX_ENTRIES:
            text += f"\n[{len(rels) - MAX_ENTRIES} more files; narrow with path or glob]"
        return ToolResult(text=text, summary=f"{len(rels)} files", data={"count": len(rels)})
