"""AgentSession: the one public API of a running session (docs/architecture.md, "AgentSession").

Every front end (the TUI, `dsv4-code run --headless`) drives a session only through this class: open or
resume, run a turn (AgentEvents stream to the `emit` callback), cancel, undo / rewind, remember / forget /
pin / view memory, explain the context and the files changed since, usage, close. Its methods return
data; front ends only format it. A command that cannot be done raises `SessionCommandError`
(agent/errors.py) with a message for the user.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..memory.capture import infer_kind
from ..memory.types import EngramError
from ..tools.memory_tools import MEMORY_TOOLS, forget_id_or_key
from ..tools.run_tests import detect_test_command
from ..tools.toolbox import DEFAULT_TOOLS, Toolbox
from ..tools.workspace import Workspace
from ..tools.base import Effect
from ..tools.preview import EditPreview, preview_edit
from .approval_rules import ApprovalRule, ApprovalRules, rule_for
from .backends.base import Backend
from .backends.resolve import make_backend
from .config import PermissionMode, Settings
from .context import backend_token_counter, repo_budget, repository_block, session_repo_map
from .context_meter import Reading
from .engram import open_memory
from .errors import SessionCommandError
from .events import AgentError, AgentEvent, Compacted, CompactionUndone, MemoryChanged, Usage
from .folder_instructions import FolderInstructions
from .memory_notes import MemoryNote, NoteAction
from .kv_wiring import SessionKV, open_session_kv
from .loop import Agent, AgentConfig, ApprovalRequest, Approver, TurnResult
from .mcp.start import start_mcp
from .messages import Message
from .permissions import Policy
from .progress import Progress, ProgressCallback, ReportsPrefill
from .prefix import session_prefix, snapshot_prefix
from .repo import Repo
from .sessions import SessionInfo, SessionNotFound, SessionStore
from .undo import UndoResult, undo_turns

if TYPE_CHECKING:
    from ..memory import Item, MemoryBlock
    from ..memory.purge import Forgotten
    from ..memory.store import MemoryStore, Remembered
    from ..tools.repo_map import RepoContext, RepoMap, RepoWatcher
    from .mcp.provider import McpProvider
    from .report import KVReport, TimingReport

CHANGED_SHOWN = 20  # changed files named in explain_context


def session_test_command(repo: Repo, settings: Settings) -> str | None:
    """The configured test command, else the detected one."""
    return settings.test_command or detect_test_command(repo.root)


def list_sessions(repo: Repo, store: SessionStore | None = None) -> list[SessionInfo]:
    """This repository's sessions, newest first."""
    return (store or SessionStore.open_default()).list(repo.identity)


def resolve_session(store: SessionStore, repo: Repo, resume: str | None, continue_latest: bool) -> str | None:
    """The id of the session to resume, or None for a new one; a resume ID may be a unique prefix."""
    if resume:
        matches = [s.id for s in store.list(repo.identity) if s.id.startswith(resume)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise SessionNotFound(f"no session {resume!r} in this repository (see 'dsv4-code sessions')")
        raise SessionNotFound(f"session prefix {resume!r} is ambiguous: {', '.join(matches[:5])}")
    if continue_latest:
        latest = store.latest(repo.identity)
        if latest is None:
            raise SessionNotFound("no earlier session in this repository to continue")
        return latest.id
    return None


def session_policy(settings: Settings, *, headless: bool = False, allow_shell: bool = False,
                   test_command: str | None = None) -> Policy:
    return Policy(mode=settings.permission_mode, headless=headless, test_command=test_command,
                  allow_shell=allow_shell or (headless and settings.permission_mode == "full-auto"))


def agent_config(settings: Settings, *, max_steps: int | None = None, max_tokens: int | None = None,
                 timeout_s: float | None = None) -> AgentConfig:
    config = AgentConfig(max_steps=max_steps or settings.max_steps, max_tokens=max_tokens, timeout_s=timeout_s,
                         context_window=settings.context_window)
    config.compaction.compact_at = settings.compact_at
    config.params.temperature = settings.temperature
    config.params.max_tokens = settings.max_output_tokens
    return config


class AgentSession:
    def __init__(self, *, repo: Repo, settings: Settings, backend: Backend, store: SessionStore, session_id: str,
                 resumed: bool, workspace: Workspace, memory: MemoryStore, repository: RepoContext,
                 system_text: Callable[[], str], repo_map: RepoMap | None = None,
                 on_progress: ProgressCallback | None = None) -> None:
        self.repo = repo
        self.settings = settings
        self.session_id = session_id
        self.resumed = resumed
        self._backend = backend
        self._store = store
        self._workspace = workspace
        self._memory = memory
        self._repository = repository
        self._repo_map = repo_map  # the map the block was built from; the watcher keeps it fresh
        self._on_progress = on_progress
        self._system_text = system_text
        self._agent: Agent | None = None
        self._watcher: RepoWatcher | None = None
        self._changed: set[str] = set()
        self._changed_lock = threading.Lock()
        self._toolbox: Toolbox | None = None
        self.approval_rules = ApprovalRules(store, session_id)  # "always allow" answers, restored on resume
        self._approver: Approver | None = None
        self._mcp: McpProvider | None = None
        self._notes_lock = threading.Lock()
        self._turn_running = False
        self._turn_thread: int | None = None
        self._pending_notes: list[MemoryNote] = []
        self._last_replacement: str | None = None  # the item of the latest "replaces: ..." (undo_memory)
        self._kv: SessionKV | None = None  # Engram KV of an in-process engine (agent/kv_wiring.py)

    @classmethod
    def open(cls, repo: Repo, settings: Settings, policy: Policy, config: AgentConfig, *,
             resume_id: str | None = None, emit: Callable[[AgentEvent], None] | None = None,
             approver: Approver | None = None, backend: Backend | None = None,
             store: SessionStore | None = None, on_progress: ProgressCallback | None = None) -> AgentSession:
        """Open a new session, or resume `resume_id`: the backend, the session log, tools, memory and the
        repository block, built once so the prompt prefix stays stable. `on_progress` hears how loading the model,
        reading the repository and (in-process) each prefill go (agent/progress.py)."""
        from ..tools.checkpoints import CheckpointStore

        if backend is None:
            if on_progress is not None:
                on_progress(Progress(stage="model", done=0, total=None))
            backend = make_backend(settings, on_progress)
        _report_prefill(backend, on_progress)
        store = store or SessionStore.open_default()
        test_command = session_test_command(repo, settings)
        if resume_id is not None:
            session_id = resume_id
            store.set_status(session_id, "active")
        else:
            session_id = store.create(repo.identity, repo.root, backend.model_id)
        memory = open_memory(store)  # the embedder loads on first recall; warm_up() starts it early
        workspace = Workspace(repo.root, test_command=test_command, repo_id=repo.identity, session_id=session_id,
                              memory=memory, syntax_gate=settings.syntax_gate,
                              secret_names=frozenset(filter(None, [settings.api_key_env])))
        mcp = start_mcp(settings, repo.root, workspace.secret_names)  # starts now, while the repository is read
        note = "" if not policy.headless else (
            "You run headless: no one can approve anything. Shell commands other than the tests are denied."
            if not policy.allow_shell else "You run headless: no one can answer questions, so decide and proceed.")
        # Only a backend with the model's own tokenizer counts better than the loader's deliberately high estimate.
        counter = backend_token_counter(backend) if backend.exact_token_count else None
        repo_map = session_repo_map(repo.root)
        scanned = repo_map.refresh(on_progress=None if on_progress is None else (
            lambda done, total: on_progress(Progress(stage="repository", done=done, total=total, unit="files"))))
        repository = repository_block(repo.root, repo_budget(config.context_window or backend.context_window), counter,
                                      repo_map=repo_map)
        repository.timings["scan_and_tags"], repository.build_s = scanned.seconds, repository.build_s + scanned.seconds
        repository.parsed, repository.from_cache = scanned.parsed, scanned.from_cache
        checkpoints = CheckpointStore(repo.root)
        checkpoints.prune()

        # Instructions and repository block as they were at session start (logged), so the system message is
        # byte-identical across compactions and resumes (agent/prefix.py).
        prefix = session_prefix(store, session_id, lambda: snapshot_prefix(repo.root, test_command, repository.text))

        def system_text() -> str:
            # Computed at session start (and after a forget), not per turn, so the prompt prefix stays stable.
            return prefix.render(note, memory=memory.current_view(repo.identity, session_id).text)

        session = cls(repo=repo, settings=settings, backend=backend, store=store, session_id=session_id,
                      resumed=resume_id is not None, workspace=workspace, memory=memory, repository=repository,
                      system_text=system_text, repo_map=repo_map, on_progress=on_progress)
        session._mcp = mcp.wait_started()
        session._toolbox = Toolbox(workspace, DEFAULT_TOOLS + MEMORY_TOOLS, extra=mcp.tools())
        for warning in mcp.warnings:
            (emit or (lambda event: None))(AgentError(message=warning))
        session._approver = approver
        session._agent = Agent(backend, session._toolbox, store, session_id, system_text(), policy, config, emit=emit,
                               approver=session._approve if approver is not None else None,
                               before_first_change=lambda turn: checkpoints.capture(session_id, turn),
                               on_user_message=session._capture, after_forget=session._context_after_forget,
                               pinned_memory=lambda: memory.current_view(repo.identity, session_id).text,
                               folder_instructions=FolderInstructions(repo.root, store, session_id).take)
        session.check_pins_fit()  # a resumed session, a smaller window: pinned memory is never cut
        session._kv = session._open_kv(backend)
        return session

    def _open_kv(self, backend: Backend) -> SessionKV | None:
        return open_session_kv(backend, self._memory, self.settings, self.session_id, self._repository,
                               lambda: self._memory.current_view(self.repo.identity, self.session_id).item_ids,
                               emit=lambda event: self._loop.emit(event))

    @property
    def _loop(self) -> Agent:
        assert self._agent is not None, "AgentSession.open builds the agent"
        return self._agent

    # --- what the session is ----------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        return self._backend.model_id

    @property
    def context_window(self) -> int:
        return self._backend.context_window

    @property
    def test_command(self) -> str | None:
        return self._workspace.test_command

    @property
    def tool_names(self) -> list[str]:
        return list(self._loop.toolbox.tools)

    @property
    def warnings(self) -> list[str]:
        """What the user should hear of at session start (an MCP server that failed to start)."""
        return list(self._mcp.warnings) if self._mcp is not None else []

    @property
    def permission_mode(self) -> str:
        return "headless" if self._loop.policy.headless else self._loop.policy.mode

    @property
    def secret_names(self) -> frozenset[str]:
        """Environment variables no subprocess of this session may see (the backend's key among them)."""
        return self._workspace.secret_names

    @property
    def turn(self) -> int:
        return self._loop.turn

    @property
    def usage(self) -> Usage:
        """Tokens used since this process opened the session."""
        return self._loop.total_usage

    def history(self) -> list[Message]:
        """The whole logged conversation, without the system message (what a resumed front end replays): not the
        View, which after a compaction holds a summary in place of the older steps."""
        return self._store.messages(self.session_id)

    # --- turns ----------------------------------------------------------------------------------------

    def run_turn(self, prompt: str) -> TurnResult:
        """One user turn, to the model's final answer or a budget; events go to `emit` as they happen."""
        with self._notes_lock:
            self._turn_running, self._turn_thread = True, threading.get_ident()
        try:
            result = self._loop.run_turn(prompt)
        finally:
            self._flush_notes()  # memory changes made from another thread during the turn
        if self._kv is not None:
            self._kv.after_turn(self.turn, result.files_changed)  # the snapshot is saved in the background
        return result

    def cancel(self) -> None:
        """Stop the running turn (from any thread); it ends with status "cancelled"."""
        self._loop.cancel()

    def use_model(self, model: str) -> None:
        """Use `model` (same backend kind) from the next turn; the conversation carries over."""
        backend = make_backend(self.settings.model_copy(update={"model": model}), self._on_progress)
        _report_prefill(backend, self._on_progress)
        self._backend = backend
        self._loop.backend = backend
        if self._kv is not None:
            self._kv.close()
        self._kv = self._open_kv(backend)

    def set_mode(self, mode: PermissionMode) -> None:
        """Change the permission mode from the next tool call on."""
        self._loop.policy = dataclasses.replace(self._loop.policy, mode=mode)

    # --- approvals ------------------------------------------------------------------------------------

    def _approve(self, request: ApprovalRequest) -> bool:
        """A request a session rule covers is allowed without asking; the others go to the front end's approver."""
        if self.approval_rules.allows(request.tool_name, request.arguments) is not None:
            return True
        assert self._approver is not None, "open() installs _approve only with an approver"
        return self._approver(request)

    def always_allow(self, request: ApprovalRequest) -> ApprovalRule:
        """Allow this kind of call for the rest of the session (and its resumptions); logged in the session."""
        rule = rule_for(request.tool_name, request.arguments)
        self.approval_rules.add(rule, self.turn)
        return rule

    def preview(self, request: ApprovalRequest) -> EditPreview | None:
        """The diff an edit call would make, computed without writing; None for calls that are not plain edits."""
        assert self._toolbox is not None, "open() builds the toolbox"
        tool = self._toolbox.tools.get(request.tool_name)
        if tool is None or Effect.CHANGES_FILES not in tool.effects or Effect.RUNS_COMMANDS in tool.effects:
            return None
        try:
            args = tool.Args.model_validate(request.arguments)
        except ValidationError as exc:
            return EditPreview(error=f"invalid arguments: {exc.error_count()} problem(s)")
        return preview_edit(tool, args, self._workspace)

    def undo(self, turns: int = 1) -> UndoResult:
        """Restore the files as they were `turns` turns ago (1: before the last turn that changed something).
        Raises SessionCommandError (UndoFailed) when the checkpoint store cannot."""
        return undo_turns(self.repo, self._store, self.session_id, turns)

    # --- the context: meter and compaction -------------------------------------------------------------

    def context(self) -> Reading:
        """How full the context the next request would send is (tokens, window, share)."""
        return self._loop.measure()

    @property
    def last_context(self) -> Reading | None:
        """The meter's reading before the last request (None before the first)."""
        return self._loop.context

    @property
    def compactions(self) -> int:
        """Compactions made since this process opened the session."""
        return self._loop.compactions

    def compact(self, focus: str | None = None) -> Compacted | None:
        """Compact now (`/compact [focus]`); None when there is nothing to compact. Never fails: a summary the
        model cannot give falls back to a digest of the logged steps."""
        return self._loop.compact(trigger="manual", focus=focus)

    def compact_undo(self) -> CompactionUndone | None:
        """Take back the latest compaction (`/compact undo`): the model sees the View before it again."""
        return self._loop.compact_undo()

    def log(self, kind: str, payload: dict[str, Any]) -> None:
        """Append an event of the front end's own (e.g. the headless report) to the session log."""
        self._store.append(self.session_id, self.turn, kind, payload)

    # --- memory ---------------------------------------------------------------------------------------
    # A change made mid-session reaches the model as a conversation message (agent/memory_notes.py), never by
    # editing the system message; a forget is the exception: its text leaves the system message and the KV at once.

    def remember(self, text: str, key: str | None = None, *, scope: str = "repo", pin: bool = False) -> Remembered:
        """Remember `text` (with `key`: a keyed value that replaces the key's earlier one). A MemoryChanged event
        says what it replaces, with the undo handle for `undo_memory`; the model sees it from the next request."""
        done: Remembered = self._memory_call(lambda m: m.remember(
            text, key=key, kind=infer_kind(text), scope=scope, pin=pin, repo_id=self.repo.identity,
            session_id=self.session_id, turn=self.turn or None, actor="user"))
        if not done.unchanged:
            self._memory_changed("remembered", done)
        return done

    def forget(self, id_or_key: str) -> Forgotten:
        """Forget everywhere (the store, its index, KV snapshots, the session logs: the item's text, the sentence it
        was captured from and its distinctive spans), then rebuild the system message and drop the backend's
        cached KV. `Forgotten.reply()` says what was purged and what a forget cannot reach."""
        done = self._memory_call(lambda m: forget_id_or_key(m, id_or_key, repo_id=self.repo.identity,
                                                            session_id=self.session_id, reason="forgotten by the user"))
        with self._notes_lock:  # a note waiting for the running turn to end must not bring the text back
            self._pending_notes = [n for n in self._pending_notes
                                   if n.item_id not in done.ids and n.replaced_id not in done.ids]
            if self._last_replacement in done.ids:
                self._last_replacement = None
        self._loop.reload(self._context_after_forget())
        return done

    def pin(self, item_id: str) -> Item:
        """Pin an active item: always in context. Refused, naming the items, when the pins would not fit the memory
        budget (PinnedOverBudget) or the context window with the system message (PinnedOverWindow)."""
        item: Item = self._memory_call(lambda m: m.pin(item_id.strip(), self.repo.identity, self.session_id))
        try:
            self._memory_call(lambda m: self.check_pins_fit())
        except SessionCommandError:
            self._memory_call(lambda m: m.unpin(item.id))
            raise
        self._note(MemoryNote(action="pinned", item_id=item.id, text=item.text, scope=item.scope, pinned=True))
        self._loop.emit(MemoryChanged(action="pinned", item_id=item.id, text=item.text, key=item.key))
        return item

    def undo_memory(self, item_id: str | None = None, keep_new: bool | None = None) -> Remembered:
        """Undo "replaces: ...": the value `item_id` (a MemoryChanged event's `undo`; None: the latest replacement
        made in this session) superseded is active again. keep_new=True: both stay (the slot rule matched two
        different subjects); False: the earlier value supersedes the new one; None: both stay when a subject slot
        (or no key) made the replacement, and the earlier value comes back in place when the user named its key."""
        target = item_id or self._last_replacement
        if target is None:
            raise SessionCommandError("no memory change to undo in this session")

        def undo(memory: MemoryStore) -> Remembered:
            new = memory.get(target)
            return memory.undo_replace(target, keep_new=(bool(new.slot) or new.key is None) if keep_new is None else keep_new)

        done: Remembered = self._memory_call(undo)
        if self._last_replacement == target:
            self._last_replacement = None
        undone = None if keep_new else done.superseded
        self._note(MemoryNote(action="restored", item_id=done.item.id, text=done.item.text, scope=done.item.scope,
                              pinned=done.item.pinned, replaces=undone.text if undone else None,
                              replaced_id=undone.id if undone else None))
        self._loop.emit(MemoryChanged(action="restored", item_id=done.item.id, text=done.item.text, key=done.item.key,
                                      replaces=undone.text if undone else None,
                                      replaced_id=undone.id if undone else None))
        return done

    def check_pins_fit(self) -> None:
        """Raise PinnedOverWindow when the system message holding the pinned memories (those pinned since the
        session started ride with it, as a compaction carries them), the tools and the reply's room exceed the
        context window: compaction cannot shrink any of it, and a pin is never cut."""
        from ..memory.types import PinnedOverWindow
        from .messages import system, user

        block = self._memory.current_view(self.repo.identity, self.session_id)
        if not block.pinned_ids:
            return
        keeper = self._loop.keeper
        messages = [system(keeper.system_text)] + ([] if block.text.strip() in keeper.system_text else [user(block.text)])
        reading = keeper.meter.measure(messages, self._loop.tools)
        if not reading.fits:
            raise PinnedOverWindow(reading.used, reading.window, block.pinned_ids)

    def memories(self) -> list[Item]:
        """The active memories this session sees (user, repo and session scope), for a panel to list by scope."""
        return self._memory_call(lambda m: m.effective(self.repo.identity, self.session_id))

    def memory_view(self) -> MemoryBlock:
        """The memory block as the model sees it now."""
        return self._memory_call(lambda m: m.current_view(self.repo.identity, self.session_id))

    def warm_up(self) -> None:
        """Start loading the embedder in the background, before the first recall needs it."""
        self._memory.warm_up()

    def _memory_call(self, call: Callable[[MemoryStore], Any]) -> Any:
        try:
            return call(self._memory)
        except EngramError as exc:
            raise SessionCommandError(str(exc)) from None

    def _capture(self, text: str, turn: int) -> list[AgentEvent]:
        """Called by the loop right after the user's message is logged: what it captures is noted at that point."""
        captured = [r for r in self._memory.capture(text, repo_id=self.repo.identity, session_id=self.session_id,
                                                    turn=turn) if not r.unchanged]
        return [self._memory_changed("captured", done, emit=False) for done in captured]

    def _memory_changed(self, action: NoteAction, done: Remembered, emit: bool = True) -> MemoryChanged:
        item, old = done.item, done.superseded
        if old is not None:
            self._last_replacement = item.id
        self._note(MemoryNote(action=action, item_id=item.id, text=item.text, scope=item.scope, pinned=item.pinned,
                              replaces=old.text if old else None, replaced_id=old.id if old else None))
        event = MemoryChanged(action=action, item_id=item.id, text=item.text, key=item.key,
                              replaces=old.text if old else None, replaced_id=old.id if old else None,
                              undo=item.id if old else None)
        if emit:
            self._loop.emit(event)
        return event

    def _note(self, note: MemoryNote) -> None:
        """Log the note where the conversation can take a message: now between turns or right after the user's
        message; while a turn runs elsewhere (a front end's thread), when it ends (never inside a tool exchange)."""
        with self._notes_lock:
            if self._turn_running and threading.get_ident() != self._turn_thread:
                self._pending_notes.append(note)
                return
        self._store.append(self.session_id, self.turn, "memory_note", note.payload())
        self._loop.keeper.sync()

    def _flush_notes(self) -> None:
        with self._notes_lock:
            pending, self._pending_notes = self._pending_notes, []
            self._turn_running = False
        for note in pending:
            self._note(note)

    def _context_after_forget(self) -> str:
        """The system message rebuilt after a forget (the loop refolds the View from the redacted log), with no
        cached trace of the forgotten text: the backend drops its KV (the V4 engine its restore points too)."""
        self._backend.drop_cache()
        if self._kv is not None:
            self._kv.after_forget()
        return self._system_text()

    # --- context and the files changed since ---------------------------------------------------------

    def watch_files(self, on_change: Callable[[list[str]], None] | None = None) -> None:
        """Follow the work tree from now on; `on_change(paths)` is called from the watcher's thread."""
        from ..tools.repo_map import RepoWatcher

        def changed(changes: Any) -> None:
            with self._changed_lock:
                self._changed.update(changes.paths)
            if self._kv is not None:
                self._kv.forget_files(list(changes.paths))  # snapshots holding the old text are evicted
            if on_change is not None:
                on_change(list(changes.paths))

        # The map the repository block came from, on the on-disk tag cache: no second scan and parse of the tree.
        self._watcher = RepoWatcher(self.repo.root, changed, repo_map=self._repo_map)
        self._watcher.start()

    def changed_files(self) -> list[str]:
        """Files changed since the repository block was built (while `watch_files` runs)."""
        with self._changed_lock:
            return sorted(self._changed)

    def diff(self) -> str:
        """The working tree against HEAD as a unified diff: what this session (and anyone else) changed."""
        from .gitdiff import diff_against_head

        return diff_against_head(self.repo.root)[0]

    def explain_context(self) -> str:
        text = self._repository.explain()
        changed = self.changed_files()
        if changed:
            text += (f"\n\nChanged since this session's context was built ({len(changed)}): "
                     f"{', '.join(changed[:CHANGED_SHOWN])}\n"
                     "The model sees its own edits in the conversation; a new session re-reads them all.")
        return text

    def kv_report(self, *, wait: bool = False) -> tuple[KVReport, TimingReport] | None:
        """Prompt tokens restored from KV snapshots (and from which tier) and the prefill timing, since the
        session opened in this process (`wait`: after the snapshots being saved are written); None for
        backends without an in-process engine."""
        if self._kv is None:
            return None
        if wait:
            self._kv.flush()
        return self._kv.report()

    def close(self, status: str | None = None) -> None:
        """Stop watching and the MCP servers, finish saving KV snapshots; `status` ("done", "stopped") is recorded for
        the session list."""
        if self._mcp is not None:
            self._mcp.close()
            self._mcp = None
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        if self._kv is not None:
            self._kv.close()
            self._kv = None
        if status is not None:
            self._store.set_status(self.session_id, status)


def _report_prefill(backend: Backend, on_progress: ProgressCallback | None) -> None:
    if on_progress is not None and isinstance(backend, ReportsPrefill):
        backend.report_prefill(lambda done, total: on_progress(Progress(stage="prefill", done=done, total=total,
                                                                        unit="tokens")))
