from __future__ import annotations

from textual.reactive import reactive
from textual.widgets import Static


class StatusBar(Static):
    """Always shows which model is in use, the session, token use and what the agent is doing."""

    DEFAULT_CSS = """
    StatusBar { dock: bottom; height: 1; background: $panel; color: $text; padding: 0 1; }
    """

    model_name: reactive[str] = reactive("")
    session_id: reactive[str] = reactive("")
    tokens: reactive[str] = reactive("")
    context: reactive[str] = reactive("")  # the context meter: share of the window the last request took
    state: reactive[str] = reactive("starting")

    def render(self) -> str:
        parts = [f"model: {self.model_name}", f"session: {self.session_id or '-'}", self.state]
        if self.tokens:
            parts.append(self.tokens)
        if self.context:
            parts.append(self.context)
        return "  │  ".join(parts)
