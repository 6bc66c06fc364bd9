"""The agent loop: ask the model, run the tool calls it makes, feed results back, until it stops calling tools.

Control flow by a few exceptions: `BudgetExhausted`, `BackendFailed`, `Cancelled`. Everything a tool
or a malformed call does wrong becomes a tool message the model reads, never an exception here.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..tools.base import Effect, ToolError, ToolResult
from ..tools.toolbox import Toolbox
from .backends.base import Backend, GenerationParams
from .compaction import CompactionSettings
from .context_keeper import ContextKeeper
from .context_meter import Reading
from .events import (
    AgentEvent, AssistantDelta, AssistantMessage, AssistantReasoningDelta, Compacted, CompactionUndone, Done, Error,
    FileChanged, MemoryChanged, ReasoningDelta, StepStarted, TestsRan, TextDelta, ToolDecision, ToolFinished,
    ToolRequested, TurnDone, TurnStarted, Usage, UsageUpdate,
)
from .messages import Message, ToolCall, tool_result, user
from .permissions import Policy
from .server_errors import is_context_overflow
from .sessions import SessionStore
from .view import Trigger, View


class BudgetExhausted(Exception):
    def __init__(self, budget: Literal["max_steps", "max_tokens", "timeout"]) -> None:
        super().__init__(budget)
        self.budget = budget


class BackendFailed(Exception):
    def __init__(self, error: Error) -> None:
        super().__init__(error.message)
        self.error = error


class Cancelled(Exception):
    pass


class _Overflow(Exception):
    """The backend said the prompt does not fit: compact once and retry."""

    def __init__(self, error: Error) -> None:
        super().__init__(error.message)
        self.error = error


CANCELLED_CALL = "cancelled: the user stopped the turn before this tool call ran"


# A tool with one of these effects may change files, so the working tree is checkpointed before it runs.
CHECKPOINTED = frozenset({Effect.CHANGES_FILES, Effect.RUNS_COMMANDS})


class AgentConfig(BaseModel):
    max_steps: int = 50
    max_tokens: int | None = None  # prompt + completion tokens over the whole run
    timeout_s: float | None = None
    repeat_limit: int = 3  # identical tool calls in one turn before the loop refuses them
    params: GenerationParams = GenerationParams()
    context_window: int | None = None  # overrides the backend's figure (`--context-window`, `context_window`)
    compaction: CompactionSettings = Field(default_factory=CompactionSettings)


@dataclass
class ApprovalRequest:
    call_id: str
    tool_name: str
    arguments: dict[str, Any]
    reason: str


Approver = Callable[[ApprovalRequest], bool]


@dataclass
class TurnResult:
    status: Literal["done", "max_steps", "max_tokens", "timeout", "backend_error", "cancelled"]
    summary: str
    steps: int
    usage: Usage
    files_changed: list[str] = field(default_factory=list)
    denied: list[dict[str, Any]] = field(default_factory=list)
    malformed_calls: int = 0
    error: str | None = None
    last_tests: dict[str, Any] | None = None
    compactions: int = 0


class Agent:
    def __init__(self, backend: Backend, toolbox: Toolbox, store: SessionStore, session_id: str, system_text: str,
                 policy: Policy, config: AgentConfig | None = None, emit: Callable[[AgentEvent], None] | None = None,
                 approver: Approver | None = None,
                 before_first_change: Callable[[int], None] | None = None,
                 on_user_message: Callable[[str, int], list[AgentEvent]] | None = None,
                 after_forget: Callable[[], str] | None = None, summariser: Backend | None = None,
                 pinned_memory: Callable[[], str] | None = None,
                 folder_instructions: Callable[[list[str], int], str] | None = None) -> None:
        self.backend = backend
        self.toolbox = toolbox
        self.tools = toolbox.schemas()  # built once: the same bytes in every request keep the prompt prefix stable
        self.store = store
        self.session_id = session_id
        self.policy = policy
        self.config = config or AgentConfig()
        self.emit = emit or (lambda event: None)
        self.approver = approver
        self.before_first_change = before_first_change
        self.on_user_message = on_user_message  # e.g. memory capture of "from now on ..." statements
        self.after_forget = after_forget  # returns the system text rebuilt once forgotten text is purged
        # text to add to a tool result for the paths it touched: a subfolder's AGENTS.md (agent/folder_instructions.py)
        self.folder_instructions = folder_instructions
        self.turn = store.turns(session_id)
        self.keeper = ContextKeeper(backend, summariser or backend, store, session_id, system_text, self.tools,
                                    window=self.config.context_window, reserved_output=self.config.params.max_tokens,
                                    settings=self.config.compaction, turn=lambda: self.turn, emit=self._emit,
                                    pinned_memory=pinned_memory)
        self.total_usage = Usage()
        # The workspace's event, so cancelling also kills a running command's process group (tools/process.py)
        self._cancel = toolbox.workspace.cancel_event
        self._unanswered: list[ToolCall] = []

    def _emit(self, event: AgentEvent) -> None:
        self.emit(event)  # late-bound: a front end may swap `emit`

    @property
    def view(self) -> View:
        return self.keeper.view

    @property
    def messages(self) -> list[Message]:
        """The request the model gets next: the View, always valid (every tool call answered)."""
        return self.keeper.messages()

    @property
    def context(self) -> Reading | None:
        """The meter's reading before the last request."""
        return self.keeper.context

    @property
    def compactions(self) -> int:
        return self.keeper.compactions

    def cancel(self) -> None:
        self._cancel.set()
        # An in-process prefill can run for seconds between events; let the backend stop it mid-way.
        self.backend.cancel()

    def run_turn(self, prompt: str, deadline: float | None = None) -> TurnResult:
        self._cancel.clear()
        # The log may have grown outside this loop since the last turn (an undo notes its reverted files there).
        self.keeper.sync()
        compactions_before = self.compactions
        self.turn += 1
        result = TurnResult(status="done", summary="", steps=0, usage=Usage())
        self.emit(TurnStarted(session_id=self.session_id, turn=self.turn, prompt=prompt))
        self._append(user(prompt))
        for event in self.on_user_message(prompt, self.turn) if self.on_user_message else []:
            self.emit(event)
        changed_before = False
        repeats: Counter[tuple[str, str]] = Counter()
        if deadline is None and self.config.timeout_s is not None:
            deadline = time.monotonic() + self.config.timeout_s
        self.toolbox.workspace.deadline = deadline  # commands stop at the run's deadline too
        try:
            while True:
                if result.steps >= self.config.max_steps:
                    raise BudgetExhausted("max_steps")
                result.steps += 1
                self.emit(StepStarted(step=result.steps))
                reply = self._ask_model(result, deadline)
                if not reply.tool_calls:
                    result.summary = (reply.content or "").strip()
                    break
                self._unanswered = list(reply.tool_calls)
                for call in reply.tool_calls:
                    changed_before = self._handle_call(call, result, repeats, changed_before)
                    self._check_cancel()
        except BudgetExhausted as exc:
            result.status = exc.budget
            result.summary = f"stopped: the {exc.budget.replace('_', '-')} budget ran out"
        except BackendFailed as exc:
            result.status = "backend_error"
            result.error = exc.error.message
            result.summary = f"stopped: backend failure: {exc.error.message}"
        except Cancelled:
            result.status = "cancelled"
            result.summary = "cancelled by the user"
            # The calls of the reply that never ran get a result, so the next request is still valid.
            for call in list(self._unanswered):
                self._finish_call(call, ToolResult(text=CANCELLED_CALL, is_error=True))
        result.compactions = self.compactions - compactions_before
        self._log("turn_done",
                          {"status": result.status, "summary": result.summary, "steps": result.steps,
                           "usage": result.usage.model_dump(exclude={"type"})})
        self.emit(TurnDone(status=result.status, summary=result.summary))
        return result

    # --- one model request -------------------------------------------------------------------

    def _ask_model(self, result: TurnResult, deadline: float | None) -> Message:
        if self.config.max_tokens is not None and self.total_usage.total_tokens >= self.config.max_tokens:
            raise BudgetExhausted("max_tokens")
        self.total_usage = self.total_usage + self.keeper.fit()
        try:
            reply, step_usage = self._stream_reply(deadline)
        except _Overflow as overflow:
            # The server counts differently from the meter: one compaction, one retry, then it is a failure.
            self.keeper.adopt_window(overflow.error)
            if self.compact(trigger="overflow") is None:
                raise BackendFailed(overflow.error) from None
            try:
                reply, step_usage = self._stream_reply(deadline)
            except _Overflow as again:
                raise BackendFailed(again.error) from None
        self._append(reply)
        result.usage = result.usage + step_usage
        self.total_usage = self.total_usage + step_usage
        self._log("usage", step_usage.model_dump(exclude={"type"}))
        self.emit(AssistantMessage(content=reply.content or "", tool_calls=reply.tool_calls))
        self.emit(UsageUpdate(step=step_usage, total=self.total_usage))
        if deadline is not None and time.monotonic() > deadline:
            raise BudgetExhausted("timeout")
        return reply

    def _stream_reply(self, deadline: float | None) -> tuple[Message, Usage]:
        text: list[str] = []
        reasoning: list[str] = []
        calls: list[ToolCall] = []
        step_usage = Usage()
        messages = self.messages
        for event in self.backend.stream(messages, self.tools, self.config.params.model_copy(update={"deadline": deadline})):
            self._check_cancel()
            if deadline is not None and time.monotonic() > deadline:
                raise BudgetExhausted("timeout")
            if isinstance(event, TextDelta):
                text.append(event.text)
                self.emit(AssistantDelta(text=event.text))
            elif isinstance(event, ReasoningDelta):
                reasoning.append(event.text)
                self.emit(AssistantReasoningDelta(text=event.text))
            elif isinstance(event, ToolCall):
                calls.append(event)
            elif isinstance(event, Usage):
                step_usage = event
            elif isinstance(event, Error):
                if is_context_overflow(event) and not text and not calls:
                    raise _Overflow(event)
                if event.kind == "timeout" and deadline is not None:
                    raise BudgetExhausted("timeout")  # the backend gave up because the run's deadline would pass
                raise BackendFailed(event)
            elif isinstance(event, Done):
                break
        self.keeper.observe(messages, step_usage.prompt_tokens)
        reply = Message(role="assistant", content="".join(text), tool_calls=calls,
                        reasoning_content="".join(reasoning) or None)
        return reply, step_usage

    # --- the context: meter and compaction --------------------------------------------------------

    def measure(self) -> Reading:
        return self.keeper.measure()

    def compact(self, trigger: Trigger = "manual", focus: str | None = None) -> Compacted | None:
        """Replace the older steps by the task state and a summary; None when there is nothing to drop.
        Never raises for model trouble: a failed summary falls back to the digest."""
        done, cost = self.keeper.compact(trigger, focus)
        self.total_usage = self.total_usage + cost
        return done

    def compact_undo(self) -> CompactionUndone | None:
        """Take back the latest compaction: the View is the one before it. None when there is none."""
        return self.keeper.compact_undo()

    # --- one tool call -------------------------------------------------------------------------

    def _handle_call(self, call: ToolCall, result: TurnResult, repeats: Counter[tuple[str, str]], changed_before: bool) -> bool:
        try:
            shown_args: dict[str, Any] | str = call.parsed_arguments()
        except ValueError:
            shown_args = call.arguments
        self.emit(ToolRequested(call_id=call.id, name=call.name, arguments=shown_args))
        try:
            tool, args = self.toolbox.prepare(call.name, call.arguments)
        except ToolError as exc:
            result.malformed_calls += 1
            self._finish_call(call, ToolResult(text=f"error: {exc}", is_error=True))
            return changed_before
        signature = (call.name, json.dumps(args.model_dump(), sort_keys=True))
        repeats[signature] += 1
        if repeats[signature] > self.config.repeat_limit:
            self._finish_call(call, ToolResult(is_error=True, text=(
                f"error: this exact {call.name} call was already made {self.config.repeat_limit} times in this turn; "
                "its result will not change. Try a different approach or finish with a summary.")))
            return changed_before
        verdict, reason = self.policy.decide(tool.effects, args.model_dump())
        approved = verdict == "allow"
        if verdict == "ask":
            approved = self.approver is not None and self.approver(
                ApprovalRequest(call_id=call.id, tool_name=call.name, arguments=args.model_dump(), reason=reason))
            reason = "approved by the user" if approved else ("denied by the user" if self.approver else reason + "; no one to approve")
        self.emit(ToolDecision(call_id=call.id, name=call.name, approved=approved, reason=reason))
        if not approved:
            result.denied.append({"tool": call.name, "arguments": args.model_dump(), "reason": reason})
            self._log("denied", {"tool": call.name, "reason": reason})
            self._finish_call(call, ToolResult(text=f"denied: {reason}. Do not retry this action; find another way or stop.",
                                               is_error=True, data={"denied": True}))
            return changed_before
        if tool.effects & CHECKPOINTED and not changed_before and self.before_first_change is not None:
            self.before_first_change(self.turn)
            changed_before = True
        outcome = self.toolbox.execute(tool, args)
        for path, action in outcome.file_changes.items():
            if path not in result.files_changed:
                result.files_changed.append(path)
            self._log("file_changed", {"path": path, "action": action})
            self.emit(FileChanged(path=path, action=action))
        if outcome.memory is not None:
            change = outcome.memory
            for item_id in change.item_ids:
                # The first id is the new item; with `replaces`, the second is the value it superseded.
                replaced = change.replaces is not None and item_id == change.item_ids[0]
                self.emit(MemoryChanged(action=change.action, item_id=item_id,
                                        replaces=change.replaces if replaced else None,
                                        replaced_id=change.item_ids[1] if replaced else None,
                                        undo=item_id if replaced else None))
        if outcome.tests is not None:
            data = outcome.tests.model_dump()
            result.last_tests = data
            self._log("tests_ran", data)
            self.emit(TestsRan(**data))
        # The task state (agent/task_state.py) is folded from these events, never read back from the text.
        if outcome.files_read:
            self._log("file_read", {"paths": outcome.files_read})
        if outcome.command is not None:
            self._log("command_ran", outcome.command.model_dump())
        if outcome.todos is not None:
            self._log("todos", {"items": [t.model_dump() for t in outcome.todos]})
        touched = [*outcome.files_read, *outcome.file_changes]
        if touched and self.folder_instructions is not None:
            outcome = outcome.model_copy(update={"text": outcome.text + self.folder_instructions(touched, self.turn)})
        self._finish_call(call, outcome)
        if outcome.memory is not None and outcome.memory.action == "forgotten" and self.after_forget is not None:
            self.reload(self.after_forget())
        return changed_before

    def reload(self, system_text: str) -> None:
        """Rebuild the View from the log, e.g. after a forget redacted it: nothing forgotten stays in memory.
        A compaction whose summary was made from redacted text gets a fresh digest in its place."""
        self.keeper.reload(system_text)

    def _finish_call(self, call: ToolCall, outcome: ToolResult) -> None:
        self._unanswered = [pending for pending in self._unanswered if pending.id != call.id]
        self._append(tool_result(call.id, call.name, outcome.text))
        first_line = outcome.text.strip().splitlines()[0] if outcome.text.strip() else ""
        self.emit(ToolFinished(call_id=call.id, name=call.name, ok=not outcome.is_error,
                               summary=(outcome.summary or first_line)[:200],
                               data=outcome.data))

    def _append(self, message: Message) -> None:
        self.keeper.append(message)

    def _log(self, kind: str, payload: dict[str, Any]) -> int:
        return self.keeper.log(kind, payload)

    def _check_cancel(self) -> None:
        if self._cancel.is_set():
            raise Cancelled()
