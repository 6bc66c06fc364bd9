"""What the model sees, how full it is, and compaction: the loop's context, in one place.

The keeper owns the fold of the session log (the View and the task state, agent/log_fold.py), the context
meter and the compactor; every event the loop logs goes through it so the View stays current. Its
`compact` never raises for model trouble (a failed summary is a digest) and returns what the summary cost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .backends.base import Backend
from .compaction import CompactionSettings, Compactor, redigest_redacted
from .context_meter import ContextMeter, Reading
from .events import AgentEvent, Compacted, CompactionSkipped, CompactionUndone, ContextUsage, Error, Usage
from .log_fold import LogFold
from .messages import Message
from .server_errors import stated_window
from .sessions import SessionStore
from .view import Compaction, Trigger, View


class ContextKeeper:
    def __init__(self, backend: Backend, summariser: Backend, store: SessionStore, session_id: str, system_text: str,
                 tools: list[dict[str, Any]], *, window: int | None, reserved_output: int | None,
                 settings: CompactionSettings, turn: Callable[[], int], emit: Callable[[AgentEvent], None],
                 pinned_memory: Callable[[], str] | None) -> None:
        self.store = store
        self.session_id = session_id
        self.system_text = system_text
        self.tools = tools
        self.settings = settings
        self.turn = turn
        self.emit = emit
        self.pinned_memory = pinned_memory  # the memory block now, for pins made after the system message was built
        # What the model sees and the task state, folded from the log (a resumed session continues from both).
        self.fold = LogFold.of(store, session_id, system_text)
        self.meter = ContextMeter(backend, window, reserved_output)
        self.compactor = Compactor(summariser, self.meter.window, settings)
        self.context: Reading | None = None  # the last reading of the meter
        self.compactions = 0  # made by this process

    @property
    def view(self) -> View:
        return self.fold.view

    def messages(self) -> list[Message]:
        """The request the model gets next: the View, always valid (every tool call answered)."""
        return self.view.messages()

    # --- the log -------------------------------------------------------------------------------------

    def log(self, kind: str, payload: dict[str, Any]) -> int:
        """Log an event and fold it (with anything logged from outside before it) into the View and task state."""
        event_id = self.store.append(self.session_id, self.turn(), kind, payload)
        self.sync()
        return event_id

    def append(self, message: Message) -> None:
        self.store.append_message(self.session_id, self.turn(), message)
        self.sync()

    def sync(self) -> None:
        """Fold what was logged since (an undo notes its reverted files there)."""
        self.fold.sync(self.store, self.session_id)

    def reload(self, system_text: str) -> None:
        """Refold from the log, e.g. after a forget redacted it; a compaction whose summary was made from redacted
        text gets a fresh digest in its place first."""
        self.system_text = system_text
        redigest_redacted(self.store, self.session_id)
        self.fold = LogFold.of(self.store, self.session_id, system_text)

    # --- the meter -----------------------------------------------------------------------------------

    def measure(self) -> Reading:
        self.context = self.meter.measure(self.messages(), self.tools)
        return self.context

    def observe(self, messages: list[Message], prompt_tokens: int) -> None:
        self.meter.observe(messages, prompt_tokens)

    def adopt_window(self, error: Error) -> None:
        """After a server's overflow error: count against the window it states, when smaller than ours."""
        stated = stated_window(error)
        if stated is not None and stated < self.meter.window:
            self.meter.window = self.compactor.window = stated

    # --- compaction ----------------------------------------------------------------------------------

    def fit(self) -> Usage:
        """Before a request: compact at the configured share, or when the request would not fit; publish the fill.
        Returns what summaries cost."""
        cost = Usage()
        reading = self.measure()
        for _ in range(2):  # a second pass when the first compaction kept too much to fit
            if reading.fits and reading.share < self.settings.compact_at:
                break
            done, spent = self.compact("auto")
            cost = cost + spent
            if done is None:
                break
            reading = self.measure()
        self.emit(ContextUsage(used=reading.used, window=reading.window, share=round(reading.share, 4), exact=reading.exact))
        return cost

    def compact(self, trigger: Trigger, focus: str | None = None) -> tuple[Compacted | None, Usage]:
        """Replace the older steps by the task state and a summary; None (and a `compaction_skipped` event) when
        nothing can be dropped or the compacted View would not be smaller: a compaction never grows the context."""
        # Before and after on one basis: the server's last count covers only the View as it was sent.
        before = self.meter.measure(self.messages(), self.tools, reported=False).used
        memory = self.pinned_memory() if self.pinned_memory is not None else ""
        memory = "" if memory.strip() in self.system_text else memory.strip()
        draft = self.compactor.draft(self.view, self.fold.task, self.fold.source_hash(), trigger=trigger,
                                     focus=focus or None, tokens_before=before, memory=memory)
        if draft is None:
            return self._skip(before, trigger, "nothing to compact: there is no earlier step to drop"), Usage()
        compaction = draft.compaction
        floor = self._measure_with(compaction)  # the task state and the kept steps alone, before any summary
        if floor >= before:
            return self._skip(before, trigger, "nothing to compact: the task state and the kept steps alone are "
                              "as large as the current context", floor), Usage()
        outcome = self.compactor.summarise(self.view.system_text, draft.dropped, draft.previous, compaction.state,
                                           compaction.focus)
        fallback_reason = outcome.fallback_reason
        compaction.summary, compaction.source = outcome.text, outcome.source
        compaction.summary_tokens = outcome.usage.total_tokens
        compaction.tokens_after = self._measure_with(compaction)
        if compaction.tokens_after >= before and outcome.source == "model":  # longer than the steps it replaces
            compaction.summary, compaction.source = draft.digest(), "digest"
            fallback_reason = "the model's summary would not make the context smaller"
            compaction.tokens_after = self._measure_with(compaction)
        if compaction.tokens_after >= before:
            return self._skip(before, trigger, "nothing to compact: the summary would not make the context "
                              "smaller", compaction.tokens_after, compaction.summary_tokens), outcome.usage
        self.log("compacted", compaction.payload())
        self.measure()
        self.compactions += 1
        event = Compacted(id=compaction.id, first_kept_event_id=compaction.first_kept_event_id, summary=compaction.summary,
                          source=compaction.source, focus=compaction.focus, trigger=trigger,
                          tokens_before=compaction.tokens_before, tokens_after=compaction.tokens_after,
                          summary_tokens=compaction.summary_tokens, fallback_reason=fallback_reason)
        self.emit(event)
        return event, outcome.usage

    def _measure_with(self, compaction: Compaction) -> int:
        """Tokens of the View as the model would see it with `compaction` applied (nothing is logged)."""
        self.view.compactions.append(compaction)
        try:
            return self.meter.measure(self.messages(), self.tools, reported=False).used
        finally:
            self.view.compactions.pop()

    def _skip(self, before: int, trigger: Trigger, reason: str, after: int | None = None, summary_tokens: int = 0) -> None:
        self.emit(CompactionSkipped(trigger=trigger, reason=reason, tokens_before=before, tokens_after=after,
                                    summary_tokens=summary_tokens))

    def compact_undo(self) -> CompactionUndone | None:
        """Take back the latest compaction: the View is the one before it. None when there is none."""
        active = self.view.active
        if active is None:
            return None
        self.log("compaction_undone", {"id": active.id})
        restored = self.view.active
        event = CompactionUndone(id=active.id, restored_id=restored.id if restored else None)
        self.emit(event)
        return event
