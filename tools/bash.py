from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field

from .base import CommandRun, Effect, ToolError, ToolResult
from .process import CommandNotRun, cap_output, run_command
from .workspace import Workspace


class BashArgs(BaseModel):
    command: str = Field(description="Shell command, run with the repository root as working directory")
    timeout_s: float = Field(default=120, gt=0, le=1800, description="Seconds before the command is killed")


class Bash:
    name: ClassVar[str] = "bash"
    description: ClassVar[str] = "Run a shell command in the repository root (no input; output is capped)."
    effects = frozenset({Effect.RUNS_COMMANDS, Effect.RUNS_SHELL})
    Args = BashArgs

    def run(self, args: BashArgs, workspace: Workspace) -> ToolResult:
        # The one tool that runs a shell, and only because a shell command is what it is asked for.
        try:
            outcome = run_command(["/bin/sh", "-c", args.command], workspace.root, args.timeout_s,
                                  secret_names=workspace.secret_names, cancel=workspace.cancel_event,
                                  deadline=workspace.deadline)
        except CommandNotRun as exc:
            raise ToolError(str(exc)) from None
        output = cap_output(outcome.output)
        if outcome.cancelled:
            text = f"{output}\n[cancelled: the command was stopped]"
        elif outcome.timed_out:
            text = f"{output}\n[killed after {args.timeout_s:g} s]"
        elif not output.strip():
            text = f"[command ran with exit code {outcome.exit_code} and printed nothing]"
        else:
            text = f"{output}\n[exit code {outcome.exit_code}]"
        return ToolResult(text=text, is_error=outcome.exit_code != 0,
                          data={"exit_code": outcome.exit_code, "timed_out": outcome.timed_out,
                                "cancelled": outcome.cancelled},
                          command=CommandRun(command=args.command, exit_code=outcome.exit_code, timed_out=outcome.timed_out))
