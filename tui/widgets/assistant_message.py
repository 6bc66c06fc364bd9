from __future__ import annotations

from textual.widgets import Markdown
from textual.widgets.markdown import MarkdownStream


class AssistantMessage(Markdown):
    """An assistant reply rendered as Markdown; streamed deltas go through a MarkdownStream, which coalesces
    fragments that arrive faster than the widget can re-render."""

    DEFAULT_CSS = """
    AssistantMessage { margin: 1 0 0 0; padding: 0 1; background: transparent; }
    """

    def __init__(self, text: str = "") -> None:
        super().__init__(text)
        self.text = text
        self._stream: MarkdownStream | None = None

    async def append_delta(self, delta: str) -> None:
        self.text += delta
        if self._stream is None:
            self._stream = Markdown.get_stream(self)
        await self._stream.write(delta)

    async def finish(self) -> None:
        stream, self._stream = self._stream, None  # taken first: a second finish while this one waits is a no-op
        if stream is not None:
            await stream.stop()
