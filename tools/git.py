from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field

from .base import READ_ONLY, ToolError, ToolResult
from .process import cap_output, run_command
from .workspace import Workspace

READ_ONLY = {"status", "diff", "log", "show"}
# Options that would write files or run programs even under a read-only subcommand.
FORBIDDEN_OPTIONS = ("--output", "--ext-diff", "--textconv", "-c", "--exec-path", "--git-dir", "--work-tree")


class GitArgs(BaseModel):
    subcommand: str = Field(description="One of: status, diff, log, show")
    args: list[str] = Field(default_factory=list, description="Further arguments, e.g. ['--stat'] or ['-n', '5']")


class Git:
    name: ClassVar[str] = "git"
    description: ClassVar[str] = "Run a read-only git command (status, diff, log, show) in the repository."
    effects = READ_ONLY
    Args = GitArgs

    def run(self, args: GitArgs, workspace: Workspace) -> ToolResult:
        if args.subcommand not in READ_ONLY:
            raise ToolError(f"git {args.subcommand} is not allowed; allowed: {', '.join(sorted(READ_ONLY))}")
        bad = [a for a in args.args if a.startswith(FORBIDDEN_OPTIONS)]
        if bad:
            raise ToolError(f"option {bad[0]} is not allowed in the read-only git tool")
        outcome = run_command(["git", "--no-pager", args.subcommand, "--no-ext-diff", *args.args]
                              if args.subcommand in {"diff", "show", "log"} else ["git", "--no-pager", args.subcommand, *args.args],
                              workspace.root, 60, env={"GIT_PAGER": "cat", "GIT_TERMINAL_PROMPT": "0"})
        text = cap_output(outcome.output) or "[no output]"
        return ToolResult(text=text, is_error=outcome.exit_code != 0, data={"exit_code": outcome.exit_code})
