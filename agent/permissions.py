"""Who may do what: the permission modes of DESIGN.md §3, and the stricter headless policy."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any, Literal

from .config import PermissionMode

Verdict = Literal["allow", "ask", "deny"]


@dataclass(frozen=True)
class Policy:
    mode: PermissionMode
    headless: bool = False
    allow_shell: bool = False
    test_command: str | None = None

    def decide(self, tool_kind: str, tool_name: str, args: dict[str, Any]) -> tuple[Verdict, str]:
        if tool_kind in ("read", "memory"):
            return "allow", ""
        if self.headless:
            return self._headless(tool_kind, tool_name, args)
        if self.mode == "full-auto":
            return "allow", ""
        if tool_kind == "edit":
            return ("allow", "") if self.mode == "auto-edit" else ("ask", "edits need approval in ask mode")
        return "ask", "commands need approval"

    def _headless(self, tool_kind: str, tool_name: str, args: dict[str, Any]) -> tuple[Verdict, str]:
        # Headless never waits for a person: whatever would need one is denied and reported.
        if tool_kind == "edit" or self.allow_shell or tool_name == "run_tests":
            return "allow", ""
        if tool_name == "bash" and self.test_command and _same_command(args.get("command", ""), self.test_command):
            return "allow", ""
        return "deny", "shell commands other than the test command are not allowed in headless mode (use --allow-shell)"


def _same_command(a: str, b: str) -> bool:
    try:
        return shlex.split(a) == shlex.split(b)
    except ValueError:
        return False
