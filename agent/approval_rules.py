"""Session approval rules: "always allow this kind" answers, such as `bash: npm test*` or `edit_file: *`.

A rule is made from one approved request (`rule_for`), kept for the session, logged in the session log as an
`approval_rule` event, and read back from the log on resume, so a resumed session asks no more than before.
"""

from __future__ import annotations

import fnmatch
import shlex
from typing import Any

from pydantic import BaseModel

from .sessions import SessionStore

RULE_EVENT = "approval_rule"
COMMAND_WORDS = 2  # "npm test*": the program and its subcommand
# A rule never covers a command that chains or redirects: "npm test*" must not allow "npm test; rm -rf ~".
SHELL_CONTROL = frozenset(";&|`$<>\n")


class ApprovalRule(BaseModel):
    tool: str
    pattern: str = "*"  # a glob over the command for command tools; "*" for every call of the tool

    def matches(self, tool: str, arguments: dict[str, Any]) -> bool:
        if tool != self.tool:
            return False
        command = arguments.get("command")
        if self.pattern == "*":
            return True
        return (isinstance(command, str) and not SHELL_CONTROL & set(command)
                and fnmatch.fnmatchcase(command.strip(), self.pattern))

    def describe(self) -> str:
        return f"{self.tool}: {self.pattern}"


def rule_for(tool: str, arguments: dict[str, Any]) -> ApprovalRule:
    """The rule an "always allow" answer to this request makes: commands by their first words, others by tool."""
    command = arguments.get("command")
    if not isinstance(command, str) or not command.strip():
        return ApprovalRule(tool=tool)
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    prefix = []
    for word in words[:COMMAND_WORDS]:
        if word.startswith("-") or any(ch in word for ch in "*?[;&|<>$`"):
            break
        prefix.append(shlex.quote(word))
    return ApprovalRule(tool=tool, pattern=(" ".join(prefix) + "*") if prefix else command.strip())


class ApprovalRules:
    def __init__(self, store: SessionStore, session_id: str) -> None:
        self._store = store
        self._session_id = session_id
        self.rules: list[ApprovalRule] = [ApprovalRule.model_validate(e["payload"])
                                          for e in store.events(session_id, RULE_EVENT)]

    def allows(self, tool: str, arguments: dict[str, Any]) -> ApprovalRule | None:
        return next((rule for rule in self.rules if rule.matches(tool, arguments)), None)

    def add(self, rule: ApprovalRule, turn: int) -> None:
        if rule not in self.rules:
            self.rules.append(rule)
            self._store.append(self._session_id, turn, RULE_EVENT, rule.model_dump())
