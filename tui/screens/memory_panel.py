from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

SCOPES = ("session", "repo", "user")


class MemoryPanel(ModalScreen[None]):
    """The active memories by scope. f forgets the highlighted one everywhere, p pins it, Esc closes.
    Forget and pin run in a worker: they touch the store, its index and the session logs."""

    CSS_PATH = "memory_panel.tcss"
    BINDINGS = [Binding("f", "forget", "Forget"), Binding("p", "pin", "Pin"), Binding("escape", "close", "Close")]

    def __init__(self, session: Any) -> None:
        super().__init__()
        self.session = session
        self.items: list[Any] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="panel"):
            yield Static("Memories  (f forget · p pin · Esc close)", id="panel-title")
            yield OptionList(id="memories")
            yield Static("", id="panel-status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="memory", exit_on_error=False)
    def load(self, note: str = "") -> None:
        items = self.session.memories()
        self.app.call_from_thread(self._show, items, note)

    def _show(self, items: list[Any], note: str) -> None:
        self.items = sorted(items, key=lambda i: (SCOPES.index(i.scope) if i.scope in SCOPES else 9, i.seq))
        options: list[Option | None] = []
        scope = None
        for item in self.items:
            if item.scope != scope:
                scope = item.scope
                options.append(Option(Text(f"— {scope} —", style="bold"), disabled=True))
            line = Text()
            line.append("📌 " if item.pinned else "   ")
            line.append(f"{item.id} ", style="dim")
            if item.key:
                line.append(f"{item.key}: ", style="bold")
            line.append(item.text)
            options.append(Option(line, id=item.id))
        memories = self.query_one(OptionList)
        memories.clear_options()
        memories.add_options([o for o in options if o is not None])
        if self.items:
            memories.highlighted = 1
        status = note or ("" if self.items else "No memories for this repository yet (/remember TEXT adds one).")
        self.query_one("#panel-status", Static).update(status)

    def _selected(self) -> str | None:
        memories = self.query_one(OptionList)
        if memories.highlighted is None:
            return None
        return memories.get_option_at_index(memories.highlighted).id

    def action_forget(self) -> None:
        if (item_id := self._selected()) is not None:
            self.change(item_id, "forget")

    def action_pin(self) -> None:
        if (item_id := self._selected()) is not None:
            self.change(item_id, "pin")

    @work(thread=True, exclusive=True, group="memory", exit_on_error=False)
    def change(self, item_id: str, action: str) -> None:
        from ...agent.errors import SessionCommandError

        try:
            if action == "forget":
                self.session.forget(item_id)
                note = f"forgot {item_id}: purged from the store, the index and the session logs"
            else:
                self.session.pin(item_id)
                note = f"pinned {item_id}: always in context from the next request"
        except SessionCommandError as exc:
            note = str(exc)
        self.load(note)

    def action_close(self) -> None:
        self.dismiss(None)
