"""Compaction: replace the older part of the View by the task state and a summary, keep the recent steps whole.

The cut falls between steps (a user message, or an assistant message with all its tool results), never
inside one, so even one long headless turn can be compacted. The summary comes from the active model in a
separate request without tools; on an error, an empty reply, a timeout or an input too long for the
window it is a deterministic digest of the logged steps instead. Nothing here can fail the session. Whether a
compaction is worth making (it must make the View smaller) is the keeper's call (agent/context_keeper.py).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from .backends.base import Backend, GenerationParams, estimate_tokens
from .events import Done, Error, Event, TextDelta, Usage
from .log_fold import source_hash
from .messages import Message, system, user
from .sessions import SessionStore
from .task_state import TaskState
from .view import Compaction, Entry, Trigger, View

# The request starts with the session's own system message (its KV prefix and prompt cache stay warm) and
# asks for the summary in the user message that follows.
SUMMARY_INSTRUCTIONS = (
    "[Summary request, not a task: call no tools.] You condense the earlier part of a coding-agent session so that the agent can continue the task without it. "
    "Write a short factual summary: what was asked, what was found, what was changed and why, what failed, and what "
    "remains to do. Name files, functions and commands exactly. Do not invent anything; do not address the user."
)
TOOL_OUTPUT_CHARS = 1500  # of each tool result, in the summary request and the digest
DIGEST_STEPS = 40
PREVIOUS_SUMMARY_CHARS = 4000


class CompactionSettings(BaseModel):
    compact_at: float = 0.8  # compact before a request once the context is this full (config key `compact_at`)
    keep_share: float = 0.25  # the recent steps kept whole take at most this share of the window
    summary_max_tokens: int = 1024
    summary_timeout_s: float = 120.0


class SummaryOutcome(BaseModel):
    text: str
    source: Literal["model", "digest"]
    usage: Usage = Usage()  # what the summary request cost
    fallback_reason: str | None = None


def plan_cut(entries: list[Entry], budget_tokens: int) -> int | None:
    """Index of the first entry kept whole: the longest tail of whole steps within the budget, dropping at least
    one step; len(entries) keeps none; None when there is nothing to drop."""
    if not entries:
        return None
    starts = [i for i, entry in enumerate(entries) if entry.message.role != "tool"]
    if not starts or starts[0] != 0:
        starts = [0] + starts
    cut = len(entries)
    for start in reversed(starts):
        if estimate_tokens([e.message for e in entries[start:]]) > budget_tokens:
            break
        cut = start
    if cut == 0:  # everything fits (a manual compaction): keep the newer half of the steps
        cut = starts[len(starts) // 2] if len(starts) > 1 else len(entries)
    return cut


@dataclass
class Draft:
    """A compaction planned but not summarised: what it drops and the compaction before it."""

    compaction: Compaction
    dropped: list[Message]
    previous: Compaction | None

    def digest(self) -> str:
        return digest(self.dropped, self.previous)


def new_compaction_id() -> str:
    return "c-" + uuid.uuid4().hex[:12]


def digest(dropped: list[Message], previous: Compaction | None) -> str:
    """A deterministic account of the dropped steps, from the log alone."""
    lines: list[str] = []
    if previous is not None:
        lines += ["Before that (the previous compaction's summary):", _clip(previous.summary, PREVIOUS_SUMMARY_CHARS), ""]
    shown = dropped[-DIGEST_STEPS * 2:]
    if len(dropped) > len(shown):
        lines.append(f"({len(dropped) - len(shown)} earlier messages not listed)")
    for message in shown:
        lines.append(_step_line(message, 200))
    return "\n".join(lines) or "(no earlier steps)"


def _step_line(message: Message, chars: int) -> str:
    text = " ".join((message.content or "").split())
    if message.role == "assistant":
        calls = "; ".join(f"{c.name}({_clip(c.arguments, chars)})" for c in message.tool_calls)
        return f"- assistant: {_clip(text, chars) or '(no text)'}" + (f" -> called {calls}" if calls else "")
    if message.role == "tool":
        return f"- {message.name or 'tool'} result: {_clip(text, chars)}"
    return f"- {message.role}: {_clip(text, chars)}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit // 2] + f" [... {len(text) - limit} chars ...] " + text[-limit // 2:]


class Compactor:
    def __init__(self, summariser: Backend, window: int, settings: CompactionSettings) -> None:
        self.summariser = summariser
        self.window = window
        self.settings = settings

    def draft(self, view: View, task: TaskState, made_from: str, *, trigger: Trigger, focus: str | None,
              tokens_before: int, memory: str) -> Draft | None:
        """The next compaction of `view` with its summary still empty (not yet logged), or None when nothing can be
        dropped. `made_from`: the source hash of the log so far (agent/log_fold.py)."""
        entries = view.visible()
        # After an overflow the server's window is smaller than ours: keep a quarter of what it refused, at most.
        basis = min(self.window, tokens_before) if trigger == "overflow" else self.window
        budget = int(basis * self.settings.keep_share) // (2 if trigger == "overflow" else 1)
        cut = plan_cut(entries, budget)
        if cut is None:
            return None
        dropped = [e.message for e in entries[:cut]]
        first_kept = entries[cut].event_id if cut < len(entries) else entries[-1].event_id + 1
        compaction = Compaction(id=new_compaction_id(), first_kept_event_id=first_kept, summary="", source="digest",
                                focus=focus, trigger=trigger, tokens_before=tokens_before, tokens_after=0,
                                state=task.render(), memory=memory, source_hash=made_from)
        return Draft(compaction=compaction, dropped=dropped, previous=view.active)

    def summarise(self, system_text: str, dropped: list[Message], previous: Compaction | None, state: str,
                  focus: str | None) -> SummaryOutcome:
        fallback = digest(dropped, previous)
        request = self._request(system_text, dropped, previous, state, focus)
        if request is None:
            return SummaryOutcome(text=fallback, source="digest", fallback_reason="the steps do not fit a summary request")
        text: list[str] = []
        deadline = time.monotonic() + self.settings.summary_timeout_s
        params = GenerationParams(max_tokens=self.settings.summary_max_tokens, temperature=0.0)
        # A server that sends nothing would never reach the check below: the watchdog cancels the request.
        watchdog = threading.Timer(self.settings.summary_timeout_s, self.summariser.cancel)
        watchdog.daemon = True
        watchdog.start()
        try:
            reason, cost = self._collect(self.summariser.stream(request, [], params), deadline, text)
        finally:
            watchdog.cancel()
        summary = "".join(text).strip()
        if reason is None and not summary:
            reason = "the model returned an empty summary"
        if reason is not None:
            return SummaryOutcome(text=fallback, source="digest", usage=cost, fallback_reason=reason)
        return SummaryOutcome(text=summary, source="model", usage=cost)

    def _collect(self, stream: Iterator[Event], deadline: float, text: list[str]) -> tuple[str | None, Usage]:
        """Gather the summary text into `text`; (why it failed or None, what it cost)."""
        cost = Usage()
        for event in stream:
            if time.monotonic() > deadline:
                self.summariser.cancel()
                return "the summary request timed out", cost
            if isinstance(event, TextDelta):
                text.append(event.text)
            elif isinstance(event, Usage):
                cost = event
            elif isinstance(event, Error):
                return f"the summary request failed: {event.message}", cost
            elif isinstance(event, Done):
                cancelled = event.finish_reason == "cancelled"
                return ("the summary request timed out or was cancelled" if cancelled else None), cost
        return None, cost

    def _request(self, system_text: str, dropped: list[Message], previous: Compaction | None, state: str,
                 focus: str | None) -> list[Message] | None:
        """The summary request, newest steps first to go in; None when not even the task state fits."""
        budget = self.window - self.settings.summary_max_tokens - 256
        head = [SUMMARY_INSTRUCTIONS, f"Task state:\n{state}"]
        if previous is not None:
            head.append(f"Summary of the steps before these:\n{_clip(previous.summary, PREVIOUS_SUMMARY_CHARS)}")
        tail = ["Summarise the steps above" + (f", focusing on: {focus}" if focus else "") + "."]
        used = estimate_tokens([system(system_text), user("\n\n".join(head + tail))])
        if used > budget:
            return None
        lines: list[str] = []
        for message in reversed(dropped):
            line = _step_line(message, TOOL_OUTPUT_CHARS)
            cost = len(line) // 4 + 1
            if used + cost > budget:
                lines.append(f"({len(dropped) - len(lines)} earlier messages left out: they did not fit)")
                break
            used += cost
            lines.append(line)
        body = "\n\n".join(head + ["Steps:\n" + "\n".join(reversed(lines))] + tail)
        request = [system(system_text), user(body)]
        if self.summariser.exact_token_count and self.summariser.count_tokens(request) > budget:
            return None
        return request


def redigest_redacted(store: SessionStore, session_id: str) -> int:
    """After a forget redacted the log: every compaction made from redacted events gets a fresh digest (and task
    state) in place of its summary, so no paraphrase of the forgotten text survives. Returns how many."""
    events = store.events(session_id)
    redone = 0
    for index, event in enumerate(events):
        if event["kind"] != "compacted":
            continue
        compaction = Compaction.model_validate(event["payload"] | {"event_id": event["id"]})
        before = events[:index]
        fresh_hash = source_hash(before, event["id"])
        if fresh_hash == compaction.source_hash:
            continue
        then = View.fold("", before)  # the View this compaction was made from
        dropped = [e.message for e in then.visible() if e.event_id < compaction.first_kept_event_id]
        fresh = compaction.model_copy(update={"summary": digest(dropped, then.active), "source": "digest",
                                              "state": TaskState.fold(before).render(), "source_hash": fresh_hash})
        store.rewrite_event(session_id, event["id"], fresh.payload())
        events[index] = event | {"payload": fresh.payload()}
        redone += 1
    return redone
