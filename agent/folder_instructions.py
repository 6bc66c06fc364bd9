"""Instructions files in subfolders (`pkg/AGENTS.md`, `pkg/CLAUDE.md`), added to the conversation when the task
first touches a file under that folder.

They go into the tool result that touched the folder, not into the system prompt, so the prompt prefix stays
byte-identical (KV reuse, server prompt caches). Each file is added once per session: what was added is logged
(`folder_instructions` events), so a resumed session does not add it again; after a compaction, whose summary
may have dropped it, it is added again on the next touch. A file whose text changed since is added again too.
Nearest wins: the files of the enclosing folders come first, the nearest last, and the message says so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from .context import Instruction, read_instruction

if TYPE_CHECKING:
    from pathlib import Path

    from .sessions import SessionStore

FOLDER_INSTRUCTION_FILES = ("AGENTS.md", "CLAUDE.md")
EVENT_KIND = "folder_instructions"
RESET_KIND = "compacted"  # after a compaction the summary may have lost them


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class FolderInstructions:
    """Finds the instructions files a tool call's paths fall under that this session's View does not hold yet."""

    def __init__(self, root: Path, store: SessionStore, session_id: str) -> None:
        self.root = root
        self.store = store
        self.session_id = session_id

    def _already_added(self) -> set[tuple[str, str]]:
        """(file, digest) pairs added since the latest compaction, from the log (so resume sees them too)."""
        resets = self.store.events(self.session_id, RESET_KIND)
        after = resets[-1]["id"] if resets else 0
        added = self.store.events(self.session_id, EVENT_KIND, after=after)
        return {(item["name"], item["digest"]) for event in added for item in event["payload"]["files"]}

    def _candidates(self, paths: Iterable[str]) -> list[Instruction]:
        """The instructions files of every folder between the root (exclusive) and each path, outermost first."""
        folders: list[PurePosixPath] = []
        for path in paths:
            parts = PurePosixPath(path).parts[:-1]  # the folders holding the file (a file's own name is not one)
            for depth in range(1, len(parts) + 1):
                folder = PurePosixPath(*parts[:depth])
                if folder not in folders:
                    folders.append(folder)
        folders.sort(key=lambda folder: len(folder.parts))
        found = []
        for folder in folders:
            for name in FOLDER_INSTRUCTION_FILES:
                item = read_instruction(self.root / folder / name, f"{folder}/{name}", confine_to=self.root)
                if item is not None:
                    found.append(item)
        return found

    def take(self, paths: Iterable[str], turn: int) -> str:
        """The text to add to the tool result for these repo-relative paths ('' when nothing is new); logged."""
        candidates = self._candidates(paths)
        if not candidates:
            return ""
        added = self._already_added()
        fresh = [item for item in candidates if (item.name, _digest(item.text)) not in added]
        if not fresh:
            return ""
        self.store.append(self.session_id, turn, EVENT_KIND,
                          {"files": [{"name": item.name, "digest": _digest(item.text)} for item in fresh]})
        return render(fresh)


def render(items: list[Instruction]) -> str:
    blocks = [f"<instructions file=\"{item.name}\">\n{item.text}\n</instructions>" for item in items]
    return ("\n\n[Instructions for the folder(s) you are working in. They apply to files under their folder; "
            "where they disagree with the repository's or with an enclosing folder's, the nearest one wins "
            "(the last here).]\n" + "\n".join(blocks))
