"""The repository root every tool works inside: path confinement, text reading, atomic writes."""

from __future__ import annotations

import os
import re
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

MAX_TEXT_BYTES = 2_000_000
TEMP_SUFFIX = ".dsv4tmp"
_UMASK = os.umask(0)
os.umask(_UMASK)


SyntaxGateMode = Literal["warn", "refuse", "off"]  # what an edit that breaks a file's syntax gets


class PathEscape(Exception):
    """A path a tool may not use: outside the repository, under `.git/` or our state, or not a usable name."""


MAX_NAME_BYTES = 255  # one path component, as every common filesystem limits it
MAX_PATH_CHARS = 4096
# Spellings that reach a git directory: any case, trailing dots/spaces (NTFS), the 8.3 short name.
_GIT_NAMES = {".git", "git~1"}
TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]{8}" + re.escape(TEMP_SUFFIX) + "$")


def _default_state_dirs() -> list[Path]:
    from ..home import config_home, dsv4_home

    return [dsv4_home(create=False), config_home()]  # the config dir holds the trust records


def check_path_text(path: str) -> None:
    """Refuse path strings no filesystem call should ever see, with a reason the model can act on."""
    if "\0" in path:
        raise PathEscape(f"path {path!r} contains a NUL byte")
    if any("\ud800" <= ch <= "\udfff" for ch in path):
        raise PathEscape(f"path {path!r} is not valid Unicode (it holds a lone surrogate)")
    if len(path) > MAX_PATH_CHARS:
        raise PathEscape(f"path is {len(path)} characters long; the limit is {MAX_PATH_CHARS}")
    for part in path.split("/"):
        if len(part.encode("utf-8")) > MAX_NAME_BYTES:
            raise PathEscape(f"path component {part[:40]!r}... is {len(part.encode('utf-8'))} bytes long; "
                             f"names are limited to {MAX_NAME_BYTES} bytes")


def is_git_name(part: str) -> bool:
    return part.casefold().rstrip(". ") in _GIT_NAMES


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
    # Environment variables no subprocess may see (the backend's key variable); the well-known ones are
    # always dropped too (tools.process.safe_environment).
    secret_names: frozenset[str] = frozenset()
    # Set it to stop the running command (its whole process group) within about a second.
    cancel_event: threading.Event = field(default_factory=threading.Event)
    deadline: float | None = None  # time.monotonic() after which commands are stopped
    # dsv4-code's own state (sessions, checkpoints, memory): never written by a tool.
    state_dirs: list[Path] = field(default_factory=_default_state_dirs)
    # Files read through `read_text` since the last `take_reads()`: the task state's "files read".
    read: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self.state_dirs = [d.expanduser().resolve() for d in self.state_dirs]
        sweep_workspace_temps(self.root)

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """An absolute path inside the root; every component's symlinks are followed before the check."""
        text = os.fspath(path)
        check_path_text(text)
        candidate = Path(text)
        if not candidate.is_absolute():
            candidate = self.root / candidate
        try:
            resolved = candidate.resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop, a name the OS refuses
            raise PathEscape(f"path {text!r} cannot be resolved: {exc}") from None
        if resolved != self.root and not resolved.is_relative_to(self.root):
            raise PathEscape(f"path {text!r} is outside the repository root {self.root}")
        return resolved

    def exact(self, rel: str) -> Path:
        """`root/rel` where no folder on the way is a symlink: for restores, which must land where recorded."""
        check_path_text(rel)
        here = self.root
        parts = Path(rel).parts
        for k, part in enumerate(parts):
            if part in ("..", "/") or (part == "." and k):
                raise PathEscape(f"{rel!r} is not a plain repository path")
            here = here / part
            if k < len(parts) - 1 and here.is_symlink():
                raise PathEscape(f"{self.relative(here)} is a symlink now (to {os.readlink(here)}), "
                                 f"so {rel} is not written through it")
        return here

    def refuse_protected(self, path: Path) -> None:
        """Raise unless tools may change `path` (resolved, inside the root): never `.git/` nor our state."""
        if not path.is_relative_to(self.root):
            raise PathEscape(f"{path} is outside the repository root {self.root}")
        rel_parts = path.relative_to(self.root).parts
        if any(is_git_name(part) for part in rel_parts):
            raise PathEscape(f"{self.relative(path)} is inside a .git folder; tools never write there")
        if rel_parts and rel_parts[0].casefold() == ".dsv4":
            raise PathEscape(f"{self.relative(path)} is dsv4-code's own configuration; tools never write there")
        for state in self.state_dirs:
            if path.is_relative_to(state) and not self.root.is_relative_to(state):
                raise PathEscape(f"{self.relative(path)} is inside dsv4-code's state ({state}); tools never write there")

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
        text = raw.decode("utf-8")
        if self.relative(path) not in self.read:
            self.read.append(self.relative(path))
        return text

    def write_bytes(self, path: Path, data: bytes, mode: int | None = None) -> str:
        """The one way tools change a file: refused under `.git/` and our state, then written atomically."""
        self.refuse_protected(path)
        blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            raise PathEscape(f"cannot write {self.relative(path)}: {self.relative(blocking)} is a file, not a folder")
        existed = path.exists()
        atomic_write(path, data, mode)
        action = "modified" if existed else "created"
        self.changed[self.relative(path)] = action
        return action

    def write_text(self, path: Path, text: str) -> str:
        """Write atomically (temp file in the same folder, fsync, rename), keeping the file's mode."""
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise PathEscape(f"content for {self.relative(path)} is not valid Unicode at character {exc.start} "
                             "(a lone surrogate); nothing was written") from None
        return self.write_bytes(path, data)

    def delete(self, path: Path) -> None:
        self.refuse_protected(path)
        path.unlink()
        self.changed[self.relative(path)] = "deleted"

    def set_mode(self, path: Path, mode: int) -> None:
        self.refuse_protected(path)
        path.chmod(mode)

    def take_changes(self) -> dict[str, str]:
        changes, self.changed = self.changed, {}
        return changes

    def take_reads(self) -> list[str]:
        reads, self.read = self.read, []
        return reads


def describe_os_error(exc: OSError, workspace: Workspace) -> str:
    """`strerror: path` with the path relative to the repository, for a model to act on."""
    names = []
    for name in (exc.filename, exc.filename2):
        if name is None:
            continue
        path = Path(os.fsdecode(name))
        names.append(workspace.relative(path) if path.is_relative_to(workspace.root) else str(path))
    return f"{exc.strerror or exc}: {' -> '.join(names)}" if names else str(exc.strerror or exc)


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


def sweep_workspace_temps(root: Path) -> list[Path]:
    """Remove the `*.dsv4tmp` files our killed writers left anywhere in the tree (only ours: name and dead pid)."""
    removed = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not is_git_name(d) and d not in ("node_modules", ".venv")]
        for name in files:
            match = TEMP_NAME.match(name) if name.endswith(TEMP_SUFFIX) else None
            if match and int(match["pid"]) != os.getpid() and not _alive(int(match["pid"])):
                (Path(folder) / name).unlink(missing_ok=True)
                removed.append(Path(folder) / name)
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
