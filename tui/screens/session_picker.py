from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option


class SessionPicker(ModalScreen[str | None]):
    """Pick a session of this repository to resume; Esc starts a new one (or, from /sessions, goes back)."""

    CSS_PATH = "session_picker.tcss"
    BINDINGS = [Binding("escape", "new_session", "New session")]

    def __init__(self, sessions: list, allow_new: bool = True) -> None:
        super().__init__()
        self.sessions = sessions
        self.allow_new = allow_new

    def compose(self) -> ComposeResult:
        hint = "Esc for a new one" if self.allow_new else "Esc to go back"
        with Vertical(id="picker"):
            yield Static(f"Resume a session (Enter), or {hint}", id="title")
            options = [Option(f"{s.updated_at[:16].replace('T', ' ')}  {s.turns:>3} turns  {s.title or '(untitled)'}",
                              id=s.id) for s in self.sessions]
            yield OptionList(*options, id="sessions")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_new_session(self) -> None:
        self.dismiss(None)
