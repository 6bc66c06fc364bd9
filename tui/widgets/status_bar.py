from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Static

SEPARATOR = " │ "


def human_tokens(n: int) -> str:
    return f"{n / 1000:.1f}k" if n >= 10_000 else str(n)


class StatusBar(Static):
    """One line: model and backend, state, permission mode, context fill, cache, cost, git, session.
    When it does not fit, the lowest-priority parts go first; model and context fill always stay."""

    DEFAULT_CSS = """
    StatusBar { dock: bottom; height: 1; background: $panel; color: $text; padding: 0 1; text-wrap: nowrap;
                text-overflow: ellipsis; }
    """

    model_name: reactive[str] = reactive("")
    backend: reactive[str] = reactive("")
    session_id: reactive[str] = reactive("")
    state: reactive[str] = reactive("starting")
    mode: reactive[str] = reactive("")
    context_used: reactive[int] = reactive(0)
    context_window: reactive[int] = reactive(0)
    cached_tokens: reactive[int] = reactive(0)
    prompt_tokens: reactive[int] = reactive(0)
    cost: reactive[float | None] = reactive(None)
    branch: reactive[str] = reactive("")
    dirty: reactive[bool] = reactive(False)

    def parts(self) -> list[tuple[int, str, str]]:
        """(priority: 0 is kept longest, text, style) in display order; the colours are theme variables."""
        fill = (f"ctx {human_tokens(self.context_used)}/{human_tokens(self.context_window)}"
                f" {100 * self.context_used // self.context_window}%" if self.context_window else "ctx -")
        parts = [(0, self.model_name, "bold")]
        if self.backend and self.backend != self.model_name:
            parts.append((3, self.backend, "dim"))
        parts += [(1, self.state, "$text-warning" if self.state != "ready" else "$text-success"), (0, fill, "")]
        if self.mode:
            parts.append((2, self.mode, "$text-accent"))
        if self.prompt_tokens:
            parts.append((3, f"cache {100 * self.cached_tokens // self.prompt_tokens}%", "dim"))
        if self.cost is not None:
            parts.append((3, f"${self.cost:.4f}", ""))
        if self.branch:
            parts.append((4, f"{self.branch}{'*' if self.dirty else ''}", "$text-secondary"))
        if self.session_id:
            parts.append((5, self.session_id, "dim"))
        return parts

    def fitted(self, width: int) -> list[tuple[int, str, str]]:
        parts = self.parts()

        def length() -> int:
            return sum(len(t) for _, t, _ in parts) + len(SEPARATOR) * (len(parts) - 1)

        while length() > width:
            lowest = max(range(len(parts)), key=lambda i: (parts[i][0], i))
            if parts[lowest][0] == 0:
                break
            parts.pop(lowest)
        over = length() - width
        if over > 0:  # only the model and the fill are left: shorten the model name, keep the fill whole
            priority, model, style = parts[0]
            parts[0] = (priority, model[:max(len(model) - over - 1, 4)] + "…", style)
        return parts

    def render(self) -> Content:
        width = max(self.size.width - 2, 20)
        pieces: list[tuple[str, str]] = []
        for index, (_, text, style) in enumerate(self.fitted(width)):
            if index:
                pieces.append((SEPARATOR, "dim"))
            pieces.append((text, style))
        return Content.assemble(*pieces)

    @property
    def plain(self) -> str:
        return self.render().plain
