"""What a text-mode headless run is doing, one line per step on stderr, so a CI log shows the work as it happens
(the report still goes to stdout at the end). Lines are built from redacted event data, like the stream-json
events, so no secret reaches the log, and a model's control characters (terminal escapes) are shown as `?`."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from ..backends.wire import printable
from ..call_brief import brief


class HeadlessProgress:
    def __init__(self, out: TextIO = sys.stderr) -> None:
        self.out = out
        self.calls: dict[str, str] = {}  # call id -> "name brief(arguments)"

    def show(self, event: dict[str, Any]) -> None:
        """`event`: an agent event as redacted JSON data."""
        kind = event["type"]
        line = None
        if kind == "step_started":
            line = f"step {event['step']}"
        elif kind == "tool_requested":
            self.calls[event["call_id"]] = f"{event['name']} {brief(event['arguments'], 80)}".rstrip()
        elif kind == "tool_decision" and not event["approved"]:
            line = f"  denied {self.calls.pop(event['call_id'], event['name'])}: {event['reason']}"
        elif kind == "tool_finished" and event["call_id"] in self.calls:  # a denied call was told above
            mark = "ok" if event["ok"] else "failed"
            summary = event["summary"].splitlines()[0][:100] if event["summary"] else ""
            line = f"  {mark:6} {self.calls.pop(event['call_id'], event['name'])}" + (f" -> {summary}" if summary else "")
        elif kind == "compacted":
            line = f"  context compacted: {event['tokens_before']} -> {event['tokens_after']} tokens"
        elif kind == "kv_restore" and event["restored_tokens"]:
            line = f"  {event['restored_tokens']} of {event['prompt_tokens']} prompt tokens restored ({event['tier']})"
        elif kind == "agent_error":
            line = f"  error: {event['message']}"
        if line is not None:
            self.out.write(f"dsv4-code: {printable(line)}\n")
            self.out.flush()
