from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option


class SessionPicker(ModalScreen[str | None]):
    """Pick a session of this repository to resume; Esc starts a new one."""

    CSS_PATH = "session_picker.tcss"
    BINDINGS = [Binding("escape", "new_session", "New session")]

    def __init__(self, sessions: list) -> None:
        super().__init__()
        self.sessions = sessions

    def compose(self) -> ComposeResult:
        yield Static("Resume a session (Enter), or Esc for a new one", id="title")
        options = [Option(f"{s.updated_at[:16].replace('T', ' ')}  {s.turns:>3} turns  {s.title or '(untitled)'}", id=s.id)
                   for s in self.sessions]
        yield OptionList(*options, id="sessions")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_new_session(self) -> None:
        self.dismiss(None)
