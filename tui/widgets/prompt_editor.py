from __future__ import annotations

import os
import re

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import TextArea

from .. import commands
from ..history import PromptHistory

LARGE_PASTE_LINES = 20  # a paste this long is kept whole but shown as one placeholder line
LARGE_PASTE_CHARS = 2000
PLACEHOLDER = re.compile(r"\[pasted #(\d+): \d+ lines\]")
MAX_COMPLETIONS = 8


def common_prefix(words: list[str]) -> str:
    return os.path.commonprefix(words) if words else ""


class PromptEditor(TextArea):
    """The multi-line prompt: Enter sends, Ctrl+J or Shift+Enter adds a line, Up/Down walk this repository's
    history (on the first/last line), Tab completes `@path` and `/command`, a large paste shows as one line."""

    DEFAULT_CSS = """
    PromptEditor { height: auto; min-height: 3; max-height: 12; border: round $accent; padding: 0 1; margin: 0 1; }
    PromptEditor:focus { border: round $accent-lighten-2; }
    """
    BINDINGS = [
        Binding("enter", "submit", "Send", show=False, priority=True),
        Binding("ctrl+j,shift+enter", "newline", "New line", show=False, priority=True),
        Binding("tab", "complete", "Complete", show=False, priority=True),
    ]

    class Submitted(Message):
        def __init__(self, editor: PromptEditor, text: str) -> None:
            super().__init__()
            self.editor = editor
            self.text = text

    class Completions(Message):
        """Candidates for the word at the cursor (empty to hide them)."""

        def __init__(self, candidates: list[str]) -> None:
            super().__init__()
            self.candidates = candidates

    def __init__(self, history: PromptHistory | None = None) -> None:
        super().__init__(id="prompt", soft_wrap=True, show_line_numbers=False, tab_behavior="focus",
                         placeholder="Ask dsv4-code…  (Enter send · Ctrl+J newline · F1 keys)")
        self.prompt_history = history
        self.files: list[str] = []  # tracked files, for @path completion; filled by a worker
        self._pastes: dict[int, str] = {}

    @property
    def value(self) -> str:
        """The prompt as it will be sent: paste placeholders replaced by what was pasted."""
        return PLACEHOLDER.sub(lambda m: self._pastes.get(int(m.group(1)), m.group(0)), self.text)

    def set_value(self, text: str) -> None:
        self.text = text
        self.move_cursor(self.document.end)

    def action_submit(self) -> None:
        value = self.value
        if not value.strip():
            return
        if self.prompt_history is not None:
            self.prompt_history.add(value)
        self.post_message(self.Submitted(self, value))

    def clear_prompt(self) -> None:
        self.text = ""
        self._pastes.clear()
        self.post_message(self.Completions([]))

    def action_newline(self) -> None:
        self.insert("\n")

    async def _on_key(self, event: events.Key) -> None:
        if event.key in ("up", "down") and self.prompt_history is not None:
            row = self.cursor_location[0]
            if (event.key == "up" and row == 0) or (event.key == "down" and row == self.document.line_count - 1):
                entry = self.prompt_history.previous() if event.key == "up" else self.prompt_history.next()
                if entry is not None:
                    event.stop()
                    event.prevent_default()
                    self.set_value(entry)
                    return
        await super()._on_key(event)

    async def _on_paste(self, event: events.Paste) -> None:
        text = event.text
        lines = text.count("\n") + 1
        if lines < LARGE_PASTE_LINES and len(text) < LARGE_PASTE_CHARS:
            await super()._on_paste(event)
            return
        event.stop()
        event.prevent_default()
        number = len(self._pastes) + 1
        self._pastes[number] = text
        self.insert(f"[pasted #{number}: {lines} lines]")

    # --- completion --------------------------------------------------------------------------------

    def _word_at_cursor(self) -> tuple[str, int]:
        row, column = self.cursor_location
        line = self.document.get_line(row)[:column]
        start = max(line.rfind(" "), line.rfind("\t")) + 1
        return line[start:], column - start

    def candidates(self) -> list[str]:
        word, _ = self._word_at_cursor()
        if word.startswith("@"):
            return [f"@{p}" for p in self.files if p.startswith(word[1:])]
        if word.startswith("/") and self.cursor_location[0] == 0 and self.text.startswith(word):
            return [f"/{c.name}" for c in commands.complete(word)]
        return []

    def action_complete(self) -> None:
        word, length = self._word_at_cursor()
        found = self.candidates()
        if not found:
            self.post_message(self.Completions([]))
            return
        completion = found[0] + " " if len(found) == 1 else common_prefix(found)
        if len(completion) > len(word):
            row, column = self.cursor_location
            self.replace(completion, (row, column - length), (row, column))
        self.post_message(self.Completions(found[:MAX_COMPLETIONS] + ([f"… {len(found) - MAX_COMPLETIONS} more"]
                                                                     if len(found) > MAX_COMPLETIONS else [])
                                           if len(found) > 1 else []))
