"""Who may do what, decided from a tool's declared effects (docs/architecture.md, "Permissions"), and the
stricter headless policy. No tool is known here by its name."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any, Literal

from ..tools.base import Effect, Effects
from .config import PermissionMode

Verdict = Literal["allow", "ask", "deny"]

# Effects that need no one's approval: reading, and memory writes the user can see and forget.
HARMLESS = frozenset({Effect.READS_FILES, Effect.READS_MEMORY, Effect.CHANGES_MEMORY})


@dataclass(frozen=True)
class Policy:
    mode: PermissionMode
    headless: bool = False
    allow_shell: bool = False
    test_command: str | None = None

    def decide(self, effects: Effects, args: dict[str, Any]) -> tuple[Verdict, str]:
        if effects <= HARMLESS:
            return "allow", ""
        # Commands can do anything; edits and destructive acts (approved like an edit) change only what they name.
        runs_commands = Effect.RUNS_COMMANDS in effects
        if self.headless:
            return self._headless(effects, runs_commands, args)
        if self.mode == "full-auto":
            return "allow", ""
        if not runs_commands:
            return ("allow", "") if self.mode == "auto-edit" else ("ask", "edits need approval in ask mode")
        return "ask", "commands need approval"

    def _headless(self, effects: Effects, runs_commands: bool, args: dict[str, Any]) -> tuple[Verdict, str]:
        # Headless never waits for a person: whatever would need one is denied and reported.
        if not runs_commands or self.allow_shell or Effect.RUNS_TESTS in effects:
            return "allow", ""
        # Only a shell tool's `command` is a command line: another tool's argument of that name (an MCP tool's)
        # means whatever that tool makes of it.
        if Effect.RUNS_SHELL in effects and self.test_command and _same_command(str(args.get("command", "")), self.test_command):
            return "allow", ""  # a shell tool asked to run exactly the test command
        return "deny", "shell commands other than the test command are not allowed in headless mode (use --allow-shell)"


def _same_command(a: str, b: str) -> bool:
    try:
        return shlex.split(a) == shlex.split(b)
    except ValueError:
        return False
