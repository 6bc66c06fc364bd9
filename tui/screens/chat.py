"""The chat screen: transcript, prompt and status bar. Agent turns run in a thread worker that only posts messages."""

from __future__ import annotations

import threading
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Input

from ...agent import events as ev
from ...agent.engram import parse_remember
from ...agent.errors import SessionCommandError
from ...agent.session import AgentSession
from .. import commands
from ..messages import AgentEventPosted, AgentFailed, AgentReady, ApprovalNeeded, TurnFinished
from ..widgets.prompt_input import PromptInput
from ..widgets.status_bar import StatusBar
from ..widgets.transcript import Transcript
from .approval import ApprovalScreen


class ChatScreen(Screen):
    CSS_PATH = "chat.tcss"
    AUTO_FOCUS = "#prompt"
    BINDINGS = [Binding("escape", "stop", "Stop the turn"), Binding("ctrl+q", "app.quit", "Quit")]

    def __init__(self, open_session: Any, model_label: str) -> None:
        super().__init__()
        self._open_session = open_session  # callable(emit, approver) -> AgentSession, run in a worker
        self.model_label = model_label
        self.session: AgentSession | None = None
        self.busy = False
        self._pending_replies: list[Any] = []

    def compose(self) -> ComposeResult:
        transcript = Transcript()
        transcript.id = "transcript"
        yield transcript
        yield PromptInput()
        yield StatusBar()

    def on_mount(self) -> None:
        status = self.query_one(StatusBar)
        status.model_name = self.model_label
        status.state = "loading model…"
        self.load_session()

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load_session(self) -> None:
        try:
            session = self._open_session(self._emit_from_worker, self._approve_from_worker)
        except Exception as exc:  # the error belongs on screen, not in a traceback behind the TUI
            self.post_message(AgentFailed(str(exc)))
            return
        self.post_message(AgentReady(session))

    # --- worker side: post only ---------------------------------------------------------------

    def _emit_from_worker(self, event: Any) -> None:
        self.post_message(AgentEventPosted(event))

    def _approve_from_worker(self, request: Any) -> bool:
        answered = threading.Event()
        answer = [False]

        def reply(value: bool) -> None:
            answer[0] = value
            answered.set()

        self.post_message(ApprovalNeeded(request, reply))
        answered.wait()
        return answer[0]

    @work(thread=True, exclusive=True, group="turn", exit_on_error=False)
    def run_turn(self, prompt: str) -> None:
        result = self.session.run_turn(prompt)
        self.post_message(TurnFinished(result))

    @work(thread=True, exclusive=True, group="turn", exit_on_error=False)
    def run_compact(self, focus: str) -> None:
        # A model summary is a request of its own: off the UI thread, like a turn.
        done = self.session.compact(focus or None)
        self.app.call_from_thread(self._compact_finished, done is not None)

    # --- UI side: handlers change state -------------------------------------------------------

    def on_agent_ready(self, message: AgentReady) -> None:
        self.session = message.session
        status = self.query_one(StatusBar)
        status.model_name = self.session.model_id
        status.session_id = self.session.session_id
        status.state = "ready"
        self.session.watch_files()
        self.session.warm_up()  # load the embedder off the UI thread before the first recall needs it
        transcript = self.query_one(Transcript)
        if self.session.resumed:
            self._replay_history(transcript)
            transcript.add_notice(f"resumed session {self.session.session_id}")

    def _memory_command(self, name: str, rest: str) -> None:
        transcript = self.query_one(Transcript)
        if self.session is None or self.busy:
            transcript.add_notice(f"/{name} needs an idle session", error=True)
            return
        try:
            if name == "remember":
                text, key = parse_remember(rest)
                result = self.session.remember(text, key=key)
                replaced = f" (replaces {result.superseded.id})" if result.superseded else ""
                transcript.add_notice(f"remembered {result.item.id}{replaced}: {result.item.text}")
            elif name == "forget":
                done = self.session.forget(rest)
                transcript.add_notice(f"forgot {', '.join(done.ids)}: purged from the store, the index and the session logs")
            elif name == "pin":
                item = self.session.pin(rest)
                transcript.add_notice(f"pinned {item.id}: always in context from the next session")
            else:
                block = self.session.memory_view()
                transcript.add_notice(block.text or "(no memories for this repository yet)")
        except SessionCommandError as exc:
            transcript.add_notice(str(exc), error=True)

    def _undo(self, name: str, rest: str) -> None:
        transcript = self.query_one(Transcript)
        if self.session is None or self.busy:
            transcript.add_notice(f"/{name} needs an idle session", error=True)
            return
        if name == "rewind" and not rest.isdigit():
            transcript.add_notice("usage: /rewind N (N turns back)", error=True)
            return
        try:
            result = self.session.undo(1 if name == "undo" else int(rest))
        except SessionCommandError as exc:
            transcript.add_notice(str(exc), error=True)
            return
        if not result.restored:
            transcript.add_notice("nothing to undo")
            return
        transcript.add_notice(f"restored {len(result.restored)} file(s): {', '.join(result.restored)}")

    def _compact(self, rest: str) -> None:
        transcript = self.query_one(Transcript)
        if self.session is None or self.busy:
            transcript.add_notice("/compact needs an idle session", error=True)
            return
        if rest == "undo":
            undone = self.session.compact_undo()
            transcript.add_notice(f"took back compaction {undone.id}: the model sees the conversation as before it"
                                  if undone else "no compaction to take back")
            return
        self.busy = True
        self.query_one(StatusBar).state = "compacting…"
        self.run_compact(rest)

    def _compact_finished(self, compacted: bool) -> None:
        self.busy = False
        self.query_one(StatusBar).state = "ready"
        if not compacted:
            self.query_one(Transcript).add_notice("nothing to compact yet")

    @property
    def changed_files(self) -> list[str]:
        """Files changed since the session's context was built (the session's watcher keeps them)."""
        return self.session.changed_files() if self.session is not None else []

    def on_unmount(self) -> None:
        if self.session is not None:
            self.session.close()

    def on_agent_failed(self, message: AgentFailed) -> None:
        self.query_one(StatusBar).state = "no model"
        self.query_one(Transcript).add_notice(f"error: {message.error}", error=True)

    def _replay_history(self, transcript: Transcript) -> None:
        for message in self.session.history():
            if message.role == "user":
                transcript.add_user(message.content or "")
            elif message.role == "assistant":
                transcript.add_assistant(message.content or "")
                for call in message.tool_calls:
                    transcript.add_tool(call.id, call.name, call.arguments)
            elif message.role == "tool" and (line := transcript.tool(message.tool_call_id or "")):
                text = (message.content or "").strip()
                line.finish(not text.startswith(("error:", "denied:")), text.splitlines()[0][:200] if text else "")

    @on(Input.Submitted, "#prompt")
    def submit(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        transcript = self.query_one(Transcript)
        command = commands.parse(text)
        if command is not None:
            event.input.value = ""
            self.run_slash_command(*command)
            return
        if text.startswith("//"):
            text = text[1:]
        if self.session is None:
            transcript.add_notice("the model is not ready yet", error=True)
            return
        if self.busy:
            transcript.add_notice("a turn is running; press Esc to stop it first")
            return
        event.input.value = ""
        transcript.add_user(text)
        self.busy = True
        self.query_one(StatusBar).state = "working…"
        self.run_turn(text)

    def run_slash_command(self, name: str, rest: str) -> None:
        transcript = self.query_one(Transcript)
        if name in ("quit", "exit"):
            self.release()
            self.app.exit()
        elif name == "help":
            transcript.add_notice(commands.help_text())
        elif name in ("remember", "forget", "pin", "memory"):
            self._memory_command(name, rest)
        elif name in ("undo", "rewind"):
            self._undo(name, rest)
        elif name == "compact":
            self._compact(rest)
        elif name == "context":
            if self.session is None:
                transcript.add_notice("no session yet: the model is still loading", error=True)
                return
            transcript.add_notice(self.session.explain_context())
        elif name == "session":
            if self.session is None:
                transcript.add_notice("no session yet: the model is still loading", error=True)
                return
            usage = self.session.usage
            transcript.add_notice(f"session {self.session.session_id} · model {self.session.model_id} · "
                                  f"{usage.prompt_tokens} prompt / {usage.completion_tokens} completion tokens this run")
        else:
            transcript.add_notice(f"unknown command /{name}; /help lists them", error=True)

    def on_agent_event_posted(self, message: AgentEventPosted) -> None:
        event = message.event
        transcript = self.query_one(Transcript)
        status = self.query_one(StatusBar)
        if isinstance(event, ev.AssistantDelta):
            transcript.add_assistant_delta(event.text)
        elif isinstance(event, ev.ToolRequested):
            transcript.add_tool(event.call_id, event.name, event.arguments)
        elif isinstance(event, ev.ToolDecision) and not event.approved:
            if line := transcript.tool(event.call_id):
                line.deny(event.reason)
        elif isinstance(event, ev.ToolFinished):
            if (line := transcript.tool(event.call_id)) and line.state != "denied":
                line.finish(event.ok, event.summary)
        elif isinstance(event, ev.UsageUpdate):
            t = event.total
            status.tokens = f"tokens {t.prompt_tokens}↑ {t.completion_tokens}↓ ({t.cached_prompt_tokens} cached)"
        elif isinstance(event, ev.ContextUsage):
            status.context = f"context {event.share:.0%} of {event.window}"
        elif isinstance(event, ev.Compacted):
            transcript.add_notice(f"compacted ({event.trigger}, {event.source} summary): {event.tokens_before} → "
                                  f"{event.tokens_after} tokens  — /compact undo to take it back")
        elif isinstance(event, ev.AssistantMessage):
            transcript.end_assistant()
        elif isinstance(event, ev.MemoryChanged) and event.action == "captured":
            transcript.add_notice(f"remembered {event.item_id} ({event.key}): {event.text}  — /forget {event.item_id} to undo")

    def on_approval_needed(self, message: ApprovalNeeded) -> None:
        request = message.request
        self._pending_replies.append(message.reply)
        self.query_one(StatusBar).state = "waiting for approval"

        def answered(allowed: bool | None) -> None:
            self._pending_replies.remove(message.reply)
            self.query_one(StatusBar).state = "working…"
            message.reply(bool(allowed))

        self.app.push_screen(ApprovalScreen(request.tool_name, request.arguments, request.reason), answered)

    def on_turn_finished(self, message: TurnFinished) -> None:
        result = message.result
        self.busy = False
        transcript = self.query_one(Transcript)
        status = self.query_one(StatusBar)
        status.state = "ready"
        if result.status == "backend_error":
            transcript.add_notice(f"error: {result.error}", error=True)
        elif result.status != "done":
            transcript.add_notice(result.summary)

    def action_stop(self) -> None:
        if self.session is not None and self.busy:
            self.session.cancel()
            for reply in list(self._pending_replies):
                reply(False)

    def release(self) -> None:
        """Unblock a worker that waits on the user, so the app can exit."""
        if self.session is not None:
            self.session.cancel()
        for reply in list(self._pending_replies):
            reply(False)
