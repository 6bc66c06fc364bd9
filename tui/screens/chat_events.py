"""How the chat screen renders each agent event. Every event has a rendering: the known ones below, any other
(from a newer agent) as one generic line, so a new event never crashes the UI."""

from __future__ import annotations

import time
from typing import Any

from ...agent import events as ev
from ..messages import AgentEventPosted, CommandOutput, DeltasReady, ValueReplaced
from ..widgets.event_line import describe_event
from ..widgets.status_bar import StatusBar
from ..widgets.transcript import Transcript

FRAME_S = 1 / 30  # streamed text is drawn at most this often, so keys never wait behind a burst of deltas
SILENT = (ev.TurnStarted, ev.StepStarted, ev.TurnDone, ev.AssistantMessage)  # shown by other means


class EventRenderer:
    """Mixin for ChatScreen: the AgentEventPosted handler."""

    prices: dict[str, Any]
    session: Any
    deltas: Any

    replaced: Any = None  # the ReplacedLine the undo key acts on
    _pending_segments: list[Any] | None = None
    _drawn_at = 0.0
    _draw_scheduled = False

    def on_deltas_ready(self, message: DeltasReady) -> None:
        if self._pending_segments is None:
            self._pending_segments = []
        self._pending_segments.append(message.segment)
        if not self._draw_scheduled:
            self._draw_scheduled = True
            self.set_timer(max(self._drawn_at + FRAME_S - time.monotonic(), 0.001), self.draw_deltas)

    async def draw_deltas(self) -> None:
        """Render every pending segment, in order (also called before any other event is rendered)."""
        self._draw_scheduled = False
        segments, self._pending_segments = self._pending_segments or [], []
        transcript = self.query_one(Transcript)
        for segment in segments:
            text = self.deltas.take(segment)
            if not text:
                continue
            if segment.kind == "text":
                await transcript.add_assistant_delta(text)
            else:
                transcript.add_reasoning_delta(text)
        self._drawn_at = time.monotonic()

    async def on_agent_event_posted(self, message: AgentEventPosted) -> None:
        event = message.event
        if self._pending_segments:
            await self.draw_deltas()
        transcript = self.query_one(Transcript)
        status = self.query_one(StatusBar)
        if isinstance(event, ev.AssistantDelta):
            await transcript.add_assistant_delta(event.text)
        elif isinstance(event, ev.AssistantReasoningDelta):
            transcript.add_reasoning_delta(event.text)
        elif isinstance(event, ev.AssistantMessage):
            await transcript.end_stream()
        elif isinstance(event, ev.ToolRequested):
            await transcript.add_tool(event.call_id, event.name, event.arguments)
        elif isinstance(event, ev.ToolDecision):
            if card := transcript.tool(event.call_id):
                card.approved() if event.approved else card.deny(event.reason)
        elif isinstance(event, ev.ToolFinished):
            if (card := transcript.tool(event.call_id)) and card.state != "denied":
                card.finish(event.ok, event.summary, event.data)
        elif isinstance(event, ev.FileChanged):
            transcript.add_event(f"{event.action} {event.path}")
        elif isinstance(event, ev.TestsRan):
            transcript.add_tests(event.command, event.passed, event.failed, event.exit_code, event.ok)
        elif isinstance(event, ev.UsageUpdate):
            self._show_usage(status, event)
        elif isinstance(event, ev.MemoryChanged) and event.replaces is not None:
            self.on_value_replaced(ValueReplaced(event.item_id, event.text or "", event.replaces))
        elif isinstance(event, ev.MemoryChanged):
            transcript.add_event(self._memory_line(event))
        elif isinstance(event, ev.AgentError):
            await transcript.add_notice(f"error: {event.message}", error=True)
        elif isinstance(event, SILENT):
            pass
        elif isinstance(event, ev.ContextUsage):
            status.context_used, status.context_window = event.used, event.window
        elif isinstance(event, ev.Compacted):
            how = "model summary" if event.source == "model" else f"digest: {event.fallback_reason or 'no summary'}"
            transcript.add_event(f"compacted ({event.trigger}, {how}): {event.tokens_before:,} -> "
                                 f"{event.tokens_after:,} tokens · /compact undo takes it back")
        elif isinstance(event, ev.CompactionUndone):
            transcript.add_event("compaction taken back: the model sees the earlier steps again")
        elif isinstance(event, ev.CompactionSkipped):
            transcript.add_event(f"not compacted ({event.trigger}): {event.reason}")
        elif isinstance(event, ev.KVRestore):
            transcript.add_event(self._kv_line(event))
        else:
            transcript.add_event(describe_event(event))

    def on_value_replaced(self, message: ValueReplaced) -> None:
        """Only the latest replacement can be taken back with the key; an earlier one keeps its line."""
        if self.replaced is not None and self.replaced.state == "undoable":
            self.replaced.mark("kept")
        self.replaced = self.query_one(Transcript).add_replaced(message.item_id, message.text, message.old_text)

    def _show_usage(self, status: StatusBar, event: ev.UsageUpdate) -> None:
        status.context_used = event.step.prompt_tokens + event.step.completion_tokens
        status.prompt_tokens = event.total.prompt_tokens
        status.cached_tokens = event.total.cached_prompt_tokens
        price = self.prices.get(status.model_name)
        if price is not None:
            t = event.total
            status.cost = price.cost(t.prompt_tokens, t.cached_prompt_tokens, t.completion_tokens)

    @staticmethod
    def _kv_line(event: ev.KVRestore) -> str:
        if event.restored_tokens:
            line = (f"KV restored: {event.restored_tokens:,} of {event.prompt_tokens:,} prompt tokens from {event.tier} "
                    f"in {event.restore_s:.2f} s, {event.prefill_tokens:,} computed")
        else:
            line = f"KV: no snapshot held this prompt, {event.prefill_tokens:,} of {event.prompt_tokens:,} tokens computed"
        return line + (f" (refused: {'; '.join(event.refused)})" if event.refused else "")

    @staticmethod
    def _memory_line(event: ev.MemoryChanged) -> str:
        key = f" ({event.key})" if event.key else ""
        if event.action in ("captured", "remembered"):
            return f"remembered {event.item_id}{key}: {event.text}  — /forget {event.item_id} to undo"
        if event.action == "pinned":
            return f"pinned {event.item_id}{key}: always in context from the next request"
        return f"memory {event.action}: {event.item_id}" + (f" — {event.text}" if event.text else "")

    async def on_command_output(self, message: CommandOutput) -> None:
        transcript = self.query_one(Transcript)
        if self.session is not None:  # /model may have switched it
            status = self.query_one(StatusBar)
            status.model_name, status.context_window = self.session.model_id, self.session.context_window
            status.state = "working…" if self.busy else "ready"
        if message.text:
            await transcript.add_notice(message.text, error=message.error)
        if message.diff:
            transcript.add_diff(message.diff)
