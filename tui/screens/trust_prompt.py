"""Asked before the session opens when the repository's own config wants settings that need trust (issue 12):
its `.dsv4/config.toml` keys beyond the harmless ones, or its `.mcp.json` servers. `t` trusts the repository
(recorded like `dsv4-code trust`, so the question is not asked again), `c` or Esc goes on without them."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

Answer = str  # "trust" | "untrusted"


class TrustPrompt(ModalScreen[Answer]):
    CSS_PATH = "trust_prompt.tcss"
    BINDINGS = [Binding("t", "answer('trust')", "Trust"), Binding("c,escape", "answer('untrusted')", "Continue untrusted")]
    AUTO_FOCUS = "#untrusted"  # Enter alone must never trust a repository

    def __init__(self, repo_root: str, wanted: list[str]) -> None:
        super().__init__()
        self.repo_root = repo_root
        self.wanted = wanted  # what the repository would set: config keys, ".mcp.json servers"

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Content.assemble(("Trust this repository?", "bold"), (f"  {self.repo_root}", "dim")),
                         id="question")
            yield Static(Content.assemble(
                "Its own config asks for settings that can send data, run programs or change permissions:\n",
                ("  " + ", ".join(self.wanted), "bold $text-warning"),
                "\n\nOnly trust a repository whose config you have read. Untrusted, these settings are ignored and "
                "everything else works as usual."), id="detail")
            with Horizontal(id="buttons"):
                yield Button("Trust  t", id="trust", variant="warning", compact=True)
                yield Button("Continue untrusted  c/Esc", id="untrusted", variant="primary", compact=True)
            yield Static("recorded by repository identity · undo: dsv4-code trust --revoke", id="hint", markup=False)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(str(event.button.id))

    def action_answer(self, answer: str) -> None:
        self.dismiss(answer)
