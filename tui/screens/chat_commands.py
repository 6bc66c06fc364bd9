"""The slash commands of the chat screen (also reached from the command palette). Anything that touches the
store, memory, git or the checkpoints runs in a worker that posts a CommandOutput."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, get_args

from textual import work

from ...agent.config import PermissionMode
from ...agent.custom_commands import CustomCommands, load_custom_commands
from ...agent.engram import parse_remember
from ...agent.errors import SessionCommandError
from ...agent.init_file import write_agents_md
from ...agent.session import list_sessions
from .. import commands
from ..messages import CommandOutput
from ..widgets.prompt_editor import PromptEditor
from ..widgets.status_bar import StatusBar
from ..widgets.transcript import Transcript

IDLE_ONLY = {"undo", "rewind", "forget", "remember", "pin", "model", "compact", "sessions"}


class ChatCommands:
    """Mixin for ChatScreen: `run_slash_text` and one handler per command."""

    session: Any
    busy: bool
    repo: Any

    def custom_commands(self) -> CustomCommands:
        """The custom slash commands (agent/custom_commands.py), read anew so a file added meanwhile is there."""
        return load_custom_commands(self.repo.root, reserved=commands.COMMANDS)

    async def run_slash_text(self, text: str) -> bool:
        """Run `text` if it is a slash command; False when it is a prompt."""
        parsed = commands.parse(text)
        if parsed is None:
            return False
        await self.run_slash_command(*parsed)
        return True

    def palette_command(self, name: str) -> None:
        """From the command palette: a command that needs an argument goes to the prompt to be completed."""
        command = commands.COMMANDS.get(name)
        if command is None or command.takes_argument and name not in ("model", "mode"):  # None: a custom one
            editor = self.query_one(PromptEditor)
            editor.set_value(f"/{name} ")
            editor.focus()
            return
        self.run_worker(self.run_slash_command(name, ""), group="palette", exit_on_error=False)

    async def run_slash_command(self, name: str, rest: str) -> None:
        transcript = self.query_one(Transcript)
        if name not in commands.COMMANDS:
            await transcript.add_notice(f"unknown command /{name}; /help lists them", error=True)
            return
        if name in ("quit", "exit"):
            self.release()
            self.app.exit()
            return
        if name == "help":
            await transcript.add_notice(commands.help_text(self.custom_commands()))
            return
        if name == "clear":
            await transcript.clear()
            return
        if self.session is None:
            await transcript.add_notice(f"/{name}: the model is still loading", error=True)
            return
        if name in IDLE_ONLY and self.busy:
            await transcript.add_notice(f"/{name} needs an idle session (Esc stops the turn)", error=True)
            return
        await getattr(self, f"_cmd_{name}")(rest)

    @work(thread=True, group="command", exit_on_error=False)
    def in_worker(self, call: Callable[[], CommandOutput]) -> None:
        try:
            output = call()
        except SessionCommandError as exc:
            output = CommandOutput(str(exc), error=True)
        self.post_message(output)

    # --- one handler per command ------------------------------------------------------------------

    async def _cmd_session(self, rest: str) -> None:
        usage = self.session.usage
        await self.query_one(Transcript).add_notice(
            f"session {self.session.session_id} · model {self.session.model_id} · "
            f"{usage.prompt_tokens} prompt / {usage.completion_tokens} completion tokens this run")

    async def _cmd_cost(self, rest: str) -> None:
        usage, status = self.session.usage, self.query_one(StatusBar)
        cost = f"${status.cost:.4f}" if status.cost is not None else f"no price for {self.session.model_id} in [prices]"
        await self.query_one(Transcript).add_notice(
            f"{usage.prompt_tokens} prompt tokens ({usage.cached_prompt_tokens} from cache), "
            f"{usage.completion_tokens} completion tokens · {cost}")

    async def _cmd_model(self, rest: str) -> None:
        if not rest:
            await self.query_one(Transcript).add_notice(f"model {self.session.model_id}; /model NAME switches")
            return
        status = self.query_one(StatusBar)
        status.state = f"loading {rest}…"
        self.loading_name = rest

        def switch() -> CommandOutput:
            self.session.use_model(rest)
            return CommandOutput(f"the next turn uses {self.session.model_id}")

        self.in_worker(switch)

    async def _cmd_mode(self, rest: str) -> None:
        modes = get_args(PermissionMode)
        if rest not in modes:
            await self.query_one(Transcript).add_notice(
                f"mode {self.query_one(StatusBar).mode}; /mode {'|'.join(modes)} changes it", error=bool(rest))
            return
        self.session.set_mode(rest)
        self.query_one(StatusBar).mode = rest
        await self.query_one(Transcript).add_notice(f"permission mode: {rest}")

    async def _cmd_context(self, rest: str) -> None:
        self.in_worker(lambda: CommandOutput(self.session.explain_context()))

    async def _cmd_memory(self, rest: str) -> None:
        from .memory_panel import MemoryPanel

        self.app.push_screen(MemoryPanel(self.session))

    async def _cmd_remember(self, rest: str) -> None:
        if not rest:
            await self.query_one(Transcript).add_notice("usage: /remember TEXT (or key=value)", error=True)
            return

        def remember() -> CommandOutput:
            text, key = parse_remember(rest)
            result = self.session.remember(text, key=key)  # its MemoryChanged event draws the line (or "replaces: …")
            return CommandOutput("" if not result.unchanged else f"already remembered as {result.item.id}")

        self.in_worker(remember)

    async def _cmd_forget(self, rest: str) -> None:
        def forget() -> CommandOutput:
            done = self.session.forget(rest)
            return CommandOutput(f"forgot {', '.join(done.ids)}: purged from the store, the index and the session logs")

        self.in_worker(forget)

    async def _cmd_pin(self, rest: str) -> None:
        def pin() -> CommandOutput:
            self.session.pin(rest)  # its MemoryChanged event draws the line
            return CommandOutput("")

        self.in_worker(pin)

    def undo_replace(self) -> None:
        """The undo key of the latest "replaces: ..." line: both values stay active (memory/undo.py)."""
        line = self.replaced
        if line is None or line.state != "undoable" or self.session is None:
            self.notify("no replaced memory to take back")
            return

        def undo() -> CommandOutput:
            done = self.session.undo_memory(line.item_id)
            self.app.call_from_thread(line.mark, "undone")
            if done.superseded is not None and done.superseded.status == "active":
                return CommandOutput(f"kept both: {done.item.id} ({done.item.text}) is active again beside {line.item_id}")
            return CommandOutput(f"restored {done.item.id} ({done.item.text}) in place of {line.item_id}")

        self.in_worker(undo)

    async def _cmd_diff(self, rest: str) -> None:
        def diff() -> CommandOutput:
            text = self.session.diff()
            return CommandOutput("changes against HEAD:" if text else "no changes against HEAD", diff=text)

        self.in_worker(diff)

    async def _cmd_init(self, rest: str) -> None:
        if rest not in ("", "--force"):
            await self.query_one(Transcript).add_notice("usage: /init [--force]", error=True)
            return

        def init() -> CommandOutput:
            result = write_agents_md(self.repo.root, force=rest == "--force")
            return CommandOutput(f"{'replaced' if result.replaced else 'wrote'} {result.path}: review it; "
                                 "sessions read it from the next one on")

        self.in_worker(init)

    async def _cmd_undo(self, rest: str) -> None:
        self._undo(1)

    async def _cmd_rewind(self, rest: str) -> None:
        if not rest.isdigit() or int(rest) < 1:
            await self.query_one(Transcript).add_notice("usage: /rewind N (N turns back)", error=True)
            return
        self._undo(int(rest))

    def _undo(self, turns: int) -> None:
        def undo() -> CommandOutput:
            result = self.session.undo(turns)
            if not result.restored:
                return CommandOutput("nothing to undo")
            return CommandOutput(f"restored {len(result.restored)} file(s): {', '.join(result.restored)}")

        self.in_worker(undo)

    async def _cmd_sessions(self, rest: str) -> None:
        self.pick_session()

    @work(thread=True, group="command", exit_on_error=False)
    def pick_session(self) -> None:
        sessions = list_sessions(self.session.repo)
        self.app.call_from_thread(self.app.pick_session_to_resume, sessions)

    async def _cmd_compact(self, rest: str) -> None:
        session = self.session
        if rest.strip() == "undo":
            self.in_worker(lambda: CommandOutput("compaction taken back: the model sees the earlier steps again"
                                                 if session.compact_undo() else "no compaction to take back"))
            return

        def compact() -> CommandOutput:
            done = session.compact(rest.strip() or None)
            if done is None:
                return CommandOutput("nothing to compact yet")
            return CommandOutput(f"compacted ({done.source}): {done.tokens_before:,} -> {done.tokens_after:,} tokens; "
                                 "/compact undo takes it back")
        self.in_worker(compact)
