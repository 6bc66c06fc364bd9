from __future__ import annotations

from rich.table import Table
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
    ("Ctrl+R", "take back the latest memory replacement (the \"replaces: …\" line)"),
    ("Ctrl+P", "command palette: every slash command"),
    ("F1", "this help"),
    ("Ctrl+Q", "quit"),
]


def two_columns(rows: list[tuple[str, str]], name_width: int) -> Table:
    """Names on the left, `name_width` wide (the same in every table, so their columns line up), what they do on
    the right, wrapped in its own column."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True, width=name_width)
    table.add_column()
    for name, what in rows:
        table.add_row(name, what)
    return table


class KeysHelp(ModalScreen[None]):
    CSS_PATH = "keys_help.tcss"
    BINDINGS = [Binding("escape,f1,q", "close", "Close")]

    def compose(self) -> ComposeResult:
        command_rows = [(c.usage, c.help) for c in commands.COMMANDS.values()]
        width = max(len(name) for name, _ in KEYS + command_rows)
        with VerticalScroll(id="help"):
            yield Static("Keys", classes="heading")
            yield Static(two_columns(KEYS, width))
            yield Static("Commands", classes="heading")
            yield Static(two_columns(command_rows, width))
            yield Static("Esc closes", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)
