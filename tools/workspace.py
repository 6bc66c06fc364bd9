"""The repository root every tool works inside: path confinement, text reading, atomic writes."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

MAX_TEXT_BYTES = 2_000_000
TEMP_SUFFIX = ".dsv4tmp"
_UMASK = os.umask(0)
os.umask(_UMASK)


SyntaxGateMode = Literal["warn", "refuse", "off"]  # what an edit that breaks a file's syntax gets


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
    # Settings the tools obey, handed in by whoever opens the workspace (never read from the environment).
    syntax_gate: SyntaxGateMode = "warn"
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
        atomic_write(path, text.encode("utf-8"))
        action = "modified" if existed else "created"
        self.changed[self.relative(path)] = action
        return action

    def delete(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        self.changed[self.relative(path)] = "deleted"

    def set_mode(self, path: Path, mode: int) -> None:
        path.chmod(mode)

    def take_changes(self) -> dict[str, str]:
        changes, self.changed = self.changed, {}
        return changes


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_temps(path: Path) -> list[Path]:
    """Remove temp files that a killed writer of `path` left behind (the target itself is never partial)."""
    removed = []
    for tmp in path.parent.glob(f".{glob_escape(path.name)}.*{TEMP_SUFFIX}"):
        pid_part = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        if pid_part.isdigit() and not _alive(int(pid_part)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def glob_escape(name: str) -> str:
    return "".join(f"[{ch}]" if ch in "*?[" else ch for ch in name)


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace `path` with `data` so that readers and crashes see the old or the new file, never a mix.

    Temp file in the same folder (same filesystem, so the rename is atomic), fsync, rename, fsync the
    folder. `mode` None keeps an existing file's mode; a new file gets what the umask would give it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None and path.exists():
        mode = path.stat().st_mode & 0o7777
    sweep_stale_temps(path)
    # The writer's pid is in the temp name so a later write can tell a dead writer's leftover from a
    # concurrent writer's file in progress.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_SUFFIX, dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp makes 0600 files; a new file gets what the user's umask would have given it.
        os.chmod(tmp, mode if mode is not None else 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed write (disk full, interrupted) leaves no litter behind
        raise
    _fsync_dir(path.parent)
