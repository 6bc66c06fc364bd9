"""The repository root every tool works inside: path confinement, text reading, atomic writes."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_TEXT_BYTES = 2_000_000


class PathEscape(Exception):
    pass


@dataclass
class Workspace:
    root: Path
    test_command: str | None = None
    # Who is working here, for tools that keep state beyond the files (memory scopes, checkpoints).
    repo_id: str | None = None
    session_id: str | None = None
    memory: Any = None  # the Engram store, when the memory tools are enabled
    # Files written by tools since the last `take_changes()`; the agent turns these into FileChanged events.
    changed: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """An absolute path inside the root; symlinks are followed before the check, so links cannot escape."""
        candidate = Path(path)
        if not candidate.is_absolute():
            candidate = self.root / candidate
        resolved = candidate.resolve()
        if resolved != self.root and not resolved.is_relative_to(self.root):
            raise PathEscape(f"path {str(path)!r} is outside the repository root {self.root}")
        return resolved

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix() or "."

    def read_text(self, path: Path) -> str:
        """UTF-8 text of a file, refusing binaries and very large files with a reason."""
        size = path.stat().st_size
        if size > MAX_TEXT_BYTES:
            raise UnicodeError(f"{self.relative(path)} is {size} bytes; files over {MAX_TEXT_BYTES} bytes are not read whole")
        raw = path.read_bytes()
        if b"\x00" in raw[:8192]:
            raise UnicodeError(f"{self.relative(path)} looks binary")
        return raw.decode("utf-8")

    def write_text(self, path: Path, text: str) -> str:
        """Write atomically (temp file in the same folder, fsync, rename), keeping the file's mode."""
        existed = path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = path.stat().st_mode & 0o7777 if existed else None
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".dsv4tmp", dir=path.parent)
        tmp = Path(tmp_name)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
        action = "modified" if existed else "created"
        self.changed[self.relative(path)] = action
        return action

    def take_changes(self) -> dict[str, str]:
        changes, self.changed = self.changed, {}
        return changes
