"""Prompt history per repository: `$DSV4_HOME/history/<repository identity>.json`, newest last, written atomically."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from ..agent.config import dsv4_home  # the TUI reaches the home directory through the agent layer

MAX_ENTRIES = 500


def history_path(repo_identity: str) -> Path:
    digest = hashlib.sha256(repo_identity.encode()).hexdigest()[:16]  # identities may hold '/' or ':'
    return dsv4_home() / "history" / f"{digest}.json"


class PromptHistory:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: list[str] = self._load()
        self._cursor = len(self.entries)

    def _load(self) -> list[str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []  # no history yet, or a damaged file: start afresh rather than refuse to start
        return [e for e in data if isinstance(e, str)] if isinstance(data, list) else []

    def add(self, text: str) -> None:
        if text.strip() and (not self.entries or self.entries[-1] != text):
            self.entries.append(text)
            self.entries = self.entries[-MAX_ENTRIES:]
            self._save()
        self._cursor = len(self.entries)

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(self.entries, handle, ensure_ascii=False)
        os.replace(tmp, self.path)

    def previous(self) -> str | None:
        if self._cursor == 0:
            return None
        self._cursor -= 1
        return self.entries[self._cursor]

    def next(self) -> str | None:
        """The newer entry; "" once past the newest (back to an empty prompt); None when already there."""
        if self._cursor >= len(self.entries):
            return None
        self._cursor += 1
        return self.entries[self._cursor] if self._cursor < len(self.entries) else ""
