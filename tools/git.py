"""The read-only git tool: an allow-list of subcommands and of options per subcommand, paths confined to
the repository, and every run through the hardened helper (`tools.gitcmd`)."""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import BaseModel, Field

from .base import READ_ONLY, ToolError, ToolResult
from .gitcmd import GitError, git_argv, hardened_environment
from .process import CommandNotRun, cap_output, run_command
from .workspace import PathEscape, Workspace

GIT_TOOL_TIMEOUT_S = 60
_COMMON = {"--stat", "--shortstat", "--numstat", "--name-only", "--name-status", "--summary", "--patch", "-p",
           "--no-patch", "-s", "--no-color", "--color=never", "--ignore-all-space", "-w", "--ignore-space-change",
           "-b", "--word-diff", "--minimal", "--patience", "--histogram", "--no-renames", "-M", "--find-renames",
           "--full-index", "--binary", "--abbrev", "--no-abbrev", "--relative", "-R", "--raw", "--cached",
           "--staged", "--merge-base", "--diff-filter", "-U", "--unified", "--function-context", "-W",
           "--oneline", "--format", "--pretty", "--decorate", "--no-decorate", "--date", "--first-parent",
           "--reverse", "--graph", "--all", "--branches", "--tags", "--author", "--grep", "-i", "--since",
           "--until", "--after", "--before", "--no-merges", "--merges", "-n", "--max-count", "--skip", "--follow",
           "-S", "-G", "--pickaxe-regex", "--left-right", "--cherry-pick", "--source", "--name-rev"}
ALLOWED_OPTIONS: dict[str, set[str]] = {
    "status": {"--short", "-s", "--branch", "-b", "--porcelain", "--long", "--untracked-files", "-u",
               "--ignored", "--ahead-behind", "--no-ahead-behind", "-z", "--show-stash", "--no-renames",
               "--renames", "-v", "--verbose"},
    "diff": _COMMON,
    "log": _COMMON,
    "show": _COMMON,
}
# Options git always reads a value for from the next argument when none is attached (`-n 5`, `--grep x`).
# Others (`--format`, `--pretty`, `-U`, `--date`, ...) take their value only attached (`-U3`, `--format=%s`):
# a word after them is checked as an argument of its own, since git parses it as one.
VALUE_NEXT = {"-n", "-S", "-G", "--author", "--grep", "--since", "--until", "--after", "--before", "--skip",
              "--max-count"}
_NUMBERED = re.compile(r"^-(n|U)?\d+$")  # -5, -n5, -U3


def _option_name(arg: str) -> str:
    """`--opt=value` -> `--opt`; a short option with its value attached (`-n5`, `-uall`) -> `-n`, `-u`."""
    if arg.startswith("--"):
        return arg.split("=", 1)[0]
    return arg[:2] if len(arg) > 2 and arg[1] in "nUSGu" else arg


def check_git_args(subcommand: str, args: list[str], workspace: Workspace) -> list[str]:
    """The arguments, if every option is allowed for the subcommand and every path is inside the repo."""
    allowed = ALLOWED_OPTIONS.get(subcommand)
    if allowed is None:
        raise ToolError(f"git {subcommand} is not allowed; allowed: {', '.join(sorted(ALLOWED_OPTIONS))}")
    checked: list[str] = []
    paths_only = False
    expect_value = False
    for arg in args:
        if "\0" in arg:
            raise ToolError("git arguments may not contain NUL bytes")
        if expect_value:
            expect_value = False
            if arg.startswith("-"):
                raise ToolError(f"the value {arg!r} looks like an option, which is not allowed here; attach values with '=' (--grep=-x)")
            checked.append(arg)
            continue
        if arg == "--":
            paths_only = True
        elif paths_only or not arg.startswith("-"):
            _check_operand(arg, workspace)
        elif _NUMBERED.match(arg):
            pass
        else:
            name = _option_name(arg)
            if name not in allowed:
                raise ToolError(f"option {arg} is not allowed for git {subcommand} in the read-only git tool")
            if "%G" in arg:
                raise ToolError("signature placeholders (%G) are not allowed: they run gpg")
            expect_value = name in VALUE_NEXT and "=" not in arg and len(arg) == len(name)
        checked.append(arg)
    return checked


def _check_operand(arg: str, workspace: Workspace) -> None:
    """A revision, `rev:path` or a path: git decides which, so every operand is confined as a path would be."""
    if arg.startswith(":(") or arg.startswith(":/"):
        raise ToolError(f"git: pathspec magic is not allowed ({arg!r})")
    path = arg.split(":", 1)[1] if ":" in arg else arg
    try:
        workspace.resolve(path)
    except PathEscape as exc:
        raise ToolError(f"git: {exc}") from None


class GitArgs(BaseModel):
    subcommand: str = Field(description="One of: status, diff, log, show")
    args: list[str] = Field(default_factory=list, description="Further arguments, e.g. ['--stat'] or ['-n', '5']")


class Git:
    name: ClassVar[str] = "git"
    description: ClassVar[str] = "Run a read-only git command (status, diff, log, show) in the repository."
    effects = READ_ONLY
    Args = GitArgs

    def run(self, args: GitArgs, workspace: Workspace) -> ToolResult:
        checked = check_git_args(args.subcommand, args.args, workspace)
        try:
            environment = hardened_environment(workspace.root, workspace.secret_names, timeout_s=GIT_TOOL_TIMEOUT_S)
            outcome = run_command(git_argv([args.subcommand, *checked]), workspace.root, GIT_TOOL_TIMEOUT_S,
                                  environment=environment, cancel=workspace.cancel_event, deadline=workspace.deadline)
        except (CommandNotRun, GitError) as exc:
            raise ToolError(str(exc)) from None
        text = cap_output(outcome.output) or "[no output]"
        return ToolResult(text=text, is_error=outcome.exit_code != 0, data={"exit_code": outcome.exit_code})
