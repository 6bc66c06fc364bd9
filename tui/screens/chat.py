"""The chat screen: transcript, progress, prompt and status bar over one AgentSession.

Threads: the session opens and every turn runs in a thread worker that only posts messages (tui/messages.py);
handlers here, on the UI thread, change widgets. Store, memory, undo and git work run in workers too
(chat_commands.py), so nothing blocks the UI thread; a worker that raises ends with a notice, never a busy screen.
"""

from __future__ import annotations

import gc
import threading
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from ...agent import events as ev
from ...agent.approval_rules import rule_for
from ...agent.loop import ApprovalRequest
from ...agent.progress import Progress
from ...agent.session import AgentSession
from ..delta_buffer import DeltaBuffer
from ..messages import (AgentEventPosted, AgentFailed, AgentReady, ApprovalNeeded, CommandOutput, DeltasReady,
                        EditPreviewed, ProgressReported, RepoFacts, TurnFinished)
from ..repo_files import git_state, tracked_files
from ..widgets.progress_line import ProgressLine
from ..widgets.prompt_editor import PromptEditor
from ..widgets.replaced_line import UNDO_KEY
from ..widgets.status_bar import StatusBar
from ..widgets.transcript import Transcript
from ..widgets.user_message import UserMessage
from .approval import ApprovalScreen
from .chat_commands import ChatCommands
from .chat_events import EventRenderer


class ChatScreen(ChatCommands, EventRenderer, Screen):
    CSS_PATH = "chat.tcss"
    AUTO_FOCUS = "#prompt"
    BINDINGS = [Binding("escape", "stop", "Stop the turn"), Binding("ctrl+q", "app.quit", "Quit"),
                Binding("f1", "keys", "Keys"), Binding(UNDO_KEY, "undo_replace", "Undo a memory replacement")]

    def __init__(self, open_session: Any, model_label: str, repo: Any, history: Any = None, mode: str = "",
                 prices: dict[str, Any] | None = None, notice: str = "") -> None:
        super().__init__()
        self.notice = notice  # said once when the screen opens (e.g. the answer to the trust question)
        self._open_session = open_session  # callable(emit, approver, on_progress) -> AgentSession, run in a worker
        self.model_label = model_label
        self.loading_name = model_label or "the model"  # the model the progress line says is loading (/model sets it)
        self.repo = repo
        self.history = history
        self.mode = mode
        self.prices = prices or {}
        self.session: AgentSession | None = None
        self.busy = False
        self.queue: list[tuple[str, UserMessage]] = []  # prompts sent before the model was ready or while busy
        self._pending_replies: list[Any] = []
        self._arguments: dict[str, dict[str, Any]] = {}  # call id -> arguments, read in the agent's worker
        self._previews: dict[str, Any] = {}
        self.deltas = DeltaBuffer()
        self._progress_lock = threading.Lock()
        self._progress: Progress | None = None  # the latest report, while a ProgressReported is on its way

    def compose(self) -> ComposeResult:
        yield Transcript()
        yield ProgressLine(id="progress")
        yield Static(id="completions", markup=False)
        yield PromptEditor(self.history)
        yield StatusBar()

    async def on_mount(self) -> None:
        if self.notice:
            await self.query_one(Transcript).add_notice(self.notice, error=self.notice.startswith("error:"))
        status = self.query_one(StatusBar)
        status.model_name, status.mode, status.state = self.model_label, self.mode, "loading model…"
        self.query_one(ProgressLine).start(f"loading {self.model_label or 'the model'}")
        # After the first frame: loading an in-process model (torch) holds the GIL for long stretches, and the
        # prompt must be on screen and focused before that starts.
        self.call_after_refresh(self.load_session)
        self.read_repo_facts()

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load_session(self) -> None:
        try:
            session = self._open_session(self._emit_from_worker, self._approve_from_worker, self._progress_from_worker)
        except Exception as exc:  # the error belongs on screen, not in a traceback behind the TUI
            self.post_message(AgentFailed(str(exc)))
            return
        session.watch_files()  # the watcher's first scan and the embedder load stay off the UI thread
        session.warm_up()
        # What is loaded now (torch, the embedder, the model) lives as long as the screen: out of the collector's
        # sight, a full collection no longer walks it, which stalled the screen ~0.25 s every second or so of
        # streaming. Let go when the screen goes (on_unmount), so the little garbage frozen with it is freed then.
        gc.freeze()
        self.post_message(AgentReady(session, session.history() if session.resumed else None))

    @work(thread=True, group="facts", exit_on_error=False)
    def read_repo_facts(self) -> None:
        branch, dirty = git_state(self.repo.root)
        self.post_message(RepoFacts(tracked_files(self.repo.root), branch, dirty))

    # --- worker side: post only -----------------------------------------------------------------

    def _emit_from_worker(self, event: Any) -> None:
        # Runs in the agent's worker, before the loop goes on: an approved edit has not written yet, so its
        # preview is the exact diff it is about to make. Deltas are coalesced (tui/delta_buffer.py).
        if isinstance(event, (ev.AssistantDelta, ev.AssistantReasoningDelta)):
            kind = "text" if isinstance(event, ev.AssistantDelta) else "reasoning"
            if (segment := self.deltas.add(kind, event.text)) is not None:
                self.post_message(DeltasReady(segment))
            return
        self.deltas.close()
        if isinstance(event, ev.ToolRequested) and isinstance(event.arguments, dict):
            self._arguments[event.call_id] = event.arguments
        elif isinstance(event, ev.ToolDecision) and event.approved and self.session is not None:
            request = ApprovalRequest(event.call_id, event.name, self._arguments.get(event.call_id, {}), "")
            preview = self._previews.pop(event.call_id, None) or self.session.preview(request)
            if preview is not None and preview.diff:
                self.post_message(EditPreviewed(event.call_id, preview.diff))
        self.post_message(AgentEventPosted(event))

    def _progress_from_worker(self, progress: Progress) -> None:
        # Called per parsed file or prefill chunk: at most one message is on its way, and the screen shows the
        # latest report when it gets to it, so a burst costs one redraw and the last state is never lost.
        with self._progress_lock:
            on_its_way, self._progress = self._progress is not None, progress
        if not on_its_way:
            self.post_message(ProgressReported(progress))

    def _approve_from_worker(self, request: ApprovalRequest) -> bool:
        preview = self.session.preview(request) if self.session is not None else None
        self._previews[request.call_id] = preview
        answered = threading.Event()
        answer = ["deny"]

        def reply(value: str) -> None:
            answer[0] = value
            answered.set()

        self.post_message(ApprovalNeeded(request, preview, reply))
        while not answered.wait(0.25):
            if not self.app.is_running:  # the app is closing: nobody will answer, and this thread must end
                return False
        if answer[0] == "always" and self.session is not None:
            rule = self.session.always_allow(request)
            self.post_message(CommandOutput(f"always allowed in this session: {rule.describe()}"))
        return answer[0] in ("allow", "always")

    @work(thread=True, exclusive=True, group="turn", exit_on_error=False)
    def run_turn(self, prompt: str) -> None:
        result = self.session.run_turn(prompt)
        self.post_message(TurnFinished(result))

    # --- UI side --------------------------------------------------------------------------------

    async def on_agent_ready(self, message: AgentReady) -> None:
        self.session = message.session
        status = self.query_one(StatusBar)
        status.model_name = self.session.model_id
        status.backend = self.model_label.removeprefix(self.session.model_id).strip(" ()") if self.model_label else ""
        status.session_id = self.session.session_id
        status.context_window = self.session.context_window
        status.state = "ready"
        self.query_one(ProgressLine).stop()
        if self.session.resumed:
            await self.replay_history(message.history)
            await self.query_one(Transcript).add_notice(f"resumed session {self.session.session_id}")
        self._next_from_queue()

    async def on_agent_failed(self, message: AgentFailed) -> None:
        self.query_one(StatusBar).state = "no model"
        self.query_one(ProgressLine).stop()
        await self.query_one(Transcript).add_notice(f"error: {message.error}", error=True)
        for _, shown in self.queue:
            shown.remove()
        self.queue.clear()

    def on_progress_reported(self, message: ProgressReported) -> None:
        with self._progress_lock:
            progress, self._progress = self._progress or message.progress, None
        line = self.query_one(ProgressLine)
        finished = progress.total is not None and progress.done >= progress.total
        if progress.stage == "model" and progress.total is None:
            return  # the line already says "loading <the model's name>" from the start
        if progress.stage in ("model", "prefill") and finished:
            line.stop()  # the model is loaded (the repository may follow), or the prompt is read: the reply streams
        elif progress.stage != "prefill" or self.busy:  # a late report after the turn ended is not shown
            line.show(progress, what=self.loading_name)

    def on_repo_facts(self, message: RepoFacts) -> None:
        self.query_one(PromptEditor).files = message.files
        status = self.query_one(StatusBar)
        status.branch, status.dirty = message.branch, message.dirty

    @on(PromptEditor.Submitted)
    async def submit(self, event: PromptEditor.Submitted) -> None:
        text = event.text.strip()
        event.editor.clear_prompt()
        custom = self.custom_commands().expand(text)  # `/name args` of a custom command: its prompt is sent
        if custom is not None:
            text = custom
        elif await self.run_slash_text(text):
            return
        elif text.startswith("//"):
            text = text[1:]
        transcript = self.query_one(Transcript)
        if self.session is None or self.busy:
            shown = await transcript.add_user(text, queued=True)
            self.queue.append((text, shown))
            return
        await transcript.add_user(text)
        self._start_turn(text)

    def on_prompt_editor_completions(self, message: PromptEditor.Completions) -> None:
        shown = self.query_one("#completions", Static)
        shown.update("  ".join(message.candidates))
        shown.set_class(bool(message.candidates), "shown")

    async def replay_history(self, history: list[Any]) -> None:
        transcript = self.query_one(Transcript)
        for message in history:
            if message.role == "user":
                await transcript.add_user(message.content or "")
            elif message.role == "assistant":
                await transcript.add_assistant(message.content or "")
                for call in message.tool_calls:
                    try:
                        arguments: dict[str, Any] | str = call.parsed_arguments()
                    except ValueError:
                        arguments = call.arguments
                    await transcript.add_tool(call.id, call.name, arguments)
            elif message.role == "tool" and (card := transcript.tool(message.tool_call_id or "")):
                text = (message.content or "").strip()
                if text.startswith("denied:"):
                    card.deny(text.splitlines()[0][:200])
                else:
                    card.finish(not text.startswith("error:"), text.splitlines()[0][:200] if text else "")

    def _start_turn(self, text: str) -> None:
        self.busy = True
        self.query_one(StatusBar).state = "working…"
        self.run_turn(text)

    def _next_from_queue(self) -> None:
        if self.queue and self.session is not None and not self.busy:
            text, shown = self.queue.pop(0)
            shown.remove_class("queued")
            self._start_turn(text)

    def on_approval_needed(self, message: ApprovalNeeded) -> None:
        request = message.request
        self._pending_replies.append(message.reply)
        self.query_one(StatusBar).state = "waiting for approval"
        if card := self.query_one(Transcript).tool(request.call_id):
            card.wait_for_approval()

        def answered(answer: str | None) -> None:
            if message.reply in self._pending_replies:
                self._pending_replies.remove(message.reply)
                message.reply(answer or "deny")
            self.query_one(StatusBar).state = "working…" if self.busy else "ready"

        rule = rule_for(request.tool_name, request.arguments).describe()
        self.app.push_screen(ApprovalScreen(request.tool_name, request.arguments, request.reason, message.preview,
                                            rule), answered)

    def on_edit_previewed(self, message: EditPreviewed) -> None:
        if card := self.query_one(Transcript).tool(message.call_id):
            card.show_diff(message.diff)

    async def on_turn_finished(self, message: TurnFinished) -> None:
        result = message.result
        await self._turn_ended()
        if result.status == "backend_error":
            await self.query_one(Transcript).add_notice(f"error: {result.error}", error=True)
        elif result.status != "done":
            await self.query_one(Transcript).add_notice(result.summary)
        self._next_from_queue()

    async def _turn_ended(self) -> None:
        self.busy = False
        self.query_one(StatusBar).state = "ready"
        self.query_one(ProgressLine).stop()
        await self.query_one(Transcript).end_stream()
        self.read_repo_facts()

    async def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        await self.query_one(Transcript).add_notice(f"error in {event.worker.group}: {error}", error=True)
        if event.worker.group == "turn":
            await self._turn_ended()
        self.query_one(StatusBar).state = "ready" if self.session is not None else "no model"

    def action_stop(self) -> None:
        if self.session is not None and self.busy:
            self.session.cancel()
            for reply in list(self._pending_replies):
                self._pending_replies.remove(reply)
                reply("deny")
            self.query_one(StatusBar).state = "stopping…"

    def action_undo_replace(self) -> None:
        self.undo_replace()

    def action_keys(self) -> None:
        from .keys_help import KeysHelp

        self.app.push_screen(KeysHelp())

    def on_unmount(self) -> None:
        self.release()
        if self.session is not None:
            self.session.close()
        gc.unfreeze()  # what this screen's session froze can be collected once it is garbage

    def release(self) -> None:
        """Unblock a worker that waits on the user, so the app can exit."""
        if self.session is not None:
            self.session.cancel()
        for reply in list(self._pending_replies):
            self._pending_replies.remove(reply)
            reply("deny")
