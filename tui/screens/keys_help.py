from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from .. import commands

KEYS = [
    ("Enter", "send the prompt (queued while the model loads or a turn runs)"),
    ("Ctrl+J, Shift+Enter", "new line in the prompt"),
    ("Up / Down", "prompt history of this repository (on the first / last line)"),
    ("Tab", "complete @path (tracked files) and /command"),
    ("Esc", "stop the running turn (a running command is killed)"),
    ("y / n / a", "in an approval: allow, deny, always allow this kind"),
    ("Ctrl+P", "command palette: every slash command"),
    ("F1", "this help"),
    ("Ctrl+Q", "quit"),
]


class KeysHelp(ModalScreen[None]):
    CSS_PATH = "keys_help.tcss"
    BINDINGS = [Binding("escape,f1,q", "close", "Close")]

    def compose(self) -> ComposeResult:
        width = max(len(k) for k, _ in KEYS) + 2
        keys = "\n".join(f"{k:<{width}}{what}" for k, what in KEYS)
        with VerticalScroll(id="help"):
            yield Static("Keys", classes="heading")
            yield Static(keys, markup=False)
            yield Static("Commands", classes="heading")
            yield Static(commands.help_text(), markup=False)
            yield Static("Esc closes", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)
