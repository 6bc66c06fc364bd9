"""Checkpoints of a repository's working tree, kept outside the repository, so a turn can be undone.

A checkpoint is a commit in a private git directory, `$DSV4_HOME/checkpoints/<repo identity>/` (the
identity of tools/repo_identity.py, so a moved clone keeps its checkpoints), used with
GIT_WORK_TREE = the repository root and a private index. It records every file that is not ignored
(tracked, modified and untracked alike; `.gitignore` files and the repository's `.git/info/exclude`
are honoured), so changes made through `bash` are captured as well as our own edits. The user's
branch, index, stash, HEAD and `.git` directory are never read for writing nor touched; the
repository need not even be a git repository.

API (what the agent loop, `dsv4-code undo`, `/undo` and `/rewind N` call):

    store = CheckpointStore(repo_root)              # store_dir defaults to $DSV4_HOME/checkpoints/<identity>
    cid = store.capture(session_id, turn)           # before a turn's first change; returns the checkpoint id
    store.list(session_id) -> list[Checkpoint]      # newest first: id, session_id, turn, created_at, tree
    store.restore(cid) -> list[str]                 # files back to that state; returns changed paths
    store.prune(max_age_days=30, max_count=100)     # drop old checkpoints; returns how many were dropped
    undo_last_turn(repo_root, session_id) -> list[str]    # restore the newest checkpoint that differs from now
    rewind(repo_root, session_id, n) -> list[str]          # restore the state before the last n turns

Files over `max_file_bytes` (50 MB) are left out of checkpoints for good (`store.large_files()`), and
so are never restored or removed by one.

`restore` first saves the current state as a "safety" checkpoint (`store.safety()` lists them), so an
undo can itself be undone with `store.restore(safety_id)`. Checkpoints an undo or rewind went back
past are dropped from the session's list, so the next undo goes one turn further back.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..home import dsv4_home
from .gitcmd import GitResult, run_git
from .repo_identity import repo_identity
from .workspace import PathEscape, Workspace

SESSION_REFS = "refs/dsv4/sessions"
SAFETY_REFS = "refs/dsv4/safety"
MAX_FILE_BYTES = 50 * 1024 * 1024
CHECKPOINT_GIT_TIMEOUT_S = 600  # `git add --all` of a big tree on a slow disk


def legacy_store_name(repo_root: Path) -> str:
    """The folder name checkpoints had before they were keyed by the repository identity (a path hash)."""
    root = Path(repo_root).resolve()
    name = re.sub(r"[^A-Za-z0-9._-]", "_", root.name) or "root"
    return f"{name}-{hashlib.sha256(str(root).encode()).hexdigest()[:12]}"


def migrate_legacy_store(checkpoints_dir: Path, repo_root: Path, identity: str) -> None:
    """Move a path-keyed checkpoint folder of this repository to its identity-keyed home, once.

    When both exist (two clones of one repository had stores), the legacy refs are fetched into the
    identity store so no checkpoint is lost, and the legacy folder is removed."""
    legacy = checkpoints_dir / legacy_store_name(repo_root)
    target = checkpoints_dir / identity
    if not (legacy / "HEAD").exists() or legacy == target:
        return
    if not target.exists():
        legacy.rename(target)
        return
    run_git(checkpoints_dir, "fetch", "--quiet", "--no-tags", str(legacy), "refs/dsv4/*:refs/dsv4/*",
            env={"GIT_DIR": str(target)}, check=True)
    shutil.rmtree(legacy)


def _ref_part(text: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", text)
    return safe if safe == text and safe else f"{safe[:40]}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


@dataclass(frozen=True)
class Checkpoint:
    id: str  # the commit id in the private store
    session_id: str
    turn: int
    created_at: float  # unix time
    tree: str
    ref: str


class CheckpointStore:
    def __init__(self, repo_root: Path | str, store_dir: Path | str | None = None,
                 max_file_bytes: int = MAX_FILE_BYTES) -> None:
        self.root = Path(repo_root).resolve()
        self.max_file_bytes = max_file_bytes
        if store_dir is None:
            identity = repo_identity(self.root)
            migrate_legacy_store(dsv4_home() / "checkpoints", self.root, identity)
            store_dir = dsv4_home() / "checkpoints" / identity
        self.dir = Path(store_dir)
        if not (self.dir / "HEAD").exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            self._git("init", "--quiet", "--bare", str(self.dir), work_tree=False)
            for key, value in (("core.autocrlf", "false"), ("core.safecrlf", "false"), ("gc.auto", "0"),
                               ("core.logAllRefUpdates", "false"), ("commit.gpgSign", "false")):
                self._git("config", key, value, work_tree=False)

    # -- git plumbing -----------------------------------------------------------------------------
    def _env(self, index: str | None) -> dict[str, str]:
        # Inherited GIT_* variables are dropped by tools.gitcmd; these are the only ones our git sees.
        env = dict(GIT_DIR=str(self.dir), GIT_AUTHOR_NAME="dsv4-code", GIT_AUTHOR_EMAIL="dsv4-code@localhost",
                   GIT_COMMITTER_NAME="dsv4-code", GIT_COMMITTER_EMAIL="dsv4-code@localhost")
        if index is not None:
            env["GIT_INDEX_FILE"] = str(self.dir / index)
        return env

    def _run(self, *args: str, index: str | None = None, work_tree: bool = True, data: bytes | None = None) -> GitResult:
        return run_git(self.root, *args, config={"core.bare": "false"} if work_tree else None,
                       work_tree=self.root if work_tree else None, env=self._env(index), input=data,
                       timeout_s=CHECKPOINT_GIT_TIMEOUT_S)

    def _git(self, *args: str, index: str | None = None, work_tree: bool = True, data: bytes | None = None) -> bytes:
        result = self._run(*args, index=index, work_tree=work_tree, data=data)
        if not result.ok:
            raise CheckpointError(f"git {' '.join(args)} failed: {result.error_text}")
        return result.stdout

    def large_files(self) -> list[str]:
        """Paths never checkpointed because they were once over max_file_bytes (so never removed either)."""
        listing = self.dir / "large-files"
        return listing.read_text().split("\0")[:-1] if listing.exists() else []

    def _sync_excludes(self, index: str) -> None:
        # Files too large to copy on every turn (datasets, builds nobody ignored) are left out for good:
        # once excluded, always excluded, so a restore never deletes a file it could not have captured.
        listed = self._git("ls-files", "-z", "--cached", "--others", "--exclude-standard", index=index).decode()
        known = set(self.large_files())
        grown = [p for p in listed.split("\0") if p and p not in known and (self.root / p).is_file()
                 and not (self.root / p).is_symlink() and (self.root / p).stat().st_size > self.max_file_bytes]
        if grown:
            with open(self.dir / "large-files", "a") as handle:
                handle.write("".join(p + "\0" for p in grown))
        large = self.large_files()
        # A repository's own .git/info/exclude says what its owner never wants tracked; honour it too.
        own = self.root / ".git" / "info" / "exclude"
        text = own.read_text(errors="replace") if own.is_file() else ""
        target = self.dir / "info" / "exclude"
        target.parent.mkdir(exist_ok=True)
        escaped = ["/" + re.sub(r"([\\*?\[!# ])", r"\\\1", p) for p in large]  # gitignore-literal, anchored
        wanted = text + "\n*.dsv4tmp\n" + "".join(line + "\n" for line in escaped)
        if not target.exists() or target.read_text() != wanted:
            target.write_text(wanted)
        if large:
            self._git("rm", "--cached", "-q", "--ignore-unmatch", "--pathspec-from-file=-", "--pathspec-file-nul",
                      index=index, data="".join(f":(literal){p}\0" for p in large).encode())

    def _snapshot_tree(self, index: str) -> str:
        self._sync_excludes(index)
        self._git("add", "--all", "--ignore-errors", ".", index=index)
        return self._git("write-tree", index=index).decode().strip()

    def _commit(self, tree: str, meta: dict[str, object]) -> str:
        return self._git("commit-tree", tree, "-m", json.dumps(meta), work_tree=False).decode().strip()

    # -- public API -------------------------------------------------------------------------------
    def capture(self, session_id: str, turn: int) -> str:
        """Record the working tree now; returns the checkpoint id."""
        tree = self._snapshot_tree(f"index-{_ref_part(session_id)}")
        now = time.time()
        commit = self._commit(tree, {"session": session_id, "turn": turn, "created_at": now})
        ref = f"{SESSION_REFS}/{_ref_part(session_id)}/{time.time_ns():020d}"
        self._git("update-ref", ref, commit, work_tree=False)
        return commit

    def current_tree(self) -> str:
        return self._snapshot_tree("index-restore")

    def list(self, session_id: str) -> list[Checkpoint]:
        return self._list(f"{SESSION_REFS}/{_ref_part(session_id)}/")

    def safety(self) -> list[Checkpoint]:
        return self._list(f"{SAFETY_REFS}/")

    def _list(self, prefix: str) -> list[Checkpoint]:
        out = self._git("for-each-ref", "--format=%(objectname) %(refname) %(tree) %(contents:subject)",
                        prefix, work_tree=False).decode()
        found = []
        for line in out.splitlines():
            commit, ref, tree, subject = line.split(" ", 3)
            meta = json.loads(subject)
            found.append(Checkpoint(commit, meta["session"], meta["turn"], meta["created_at"], tree, ref))
        return sorted(found, key=lambda c: (c.created_at, c.ref), reverse=True)

    def restore(self, checkpoint_id: str) -> list[str]:
        """Make the files match the checkpoint: modified ones back, new ones removed, deleted ones back.

        Nothing is written or removed through a symlink (a folder the turn replaced by a link to elsewhere)
        nor under `.git/`: such paths are left alone and RestoreIncomplete names them after the rest is done.
        """
        target = self._git("rev-parse", f"{checkpoint_id}^{{tree}}", work_tree=False).decode().strip()
        current = self.current_tree()
        if current == target:
            return []
        safety = self._commit(current, {"session": "safety", "turn": -1, "created_at": time.time()})
        self._git("update-ref", f"{SAFETY_REFS}/{time.time_ns():020d}", safety, work_tree=False)
        changes = self._git("diff-tree", "-r", "-z", "--no-renames", "--name-status", current, target,
                            work_tree=False).decode().split("\0")
        entries = [(status, path) for status, path in zip(changes[0::2], changes[1::2]) if path]
        workspace = Workspace(self.root, state_dirs=[self.dir])
        restored: list[str] = []
        refused: dict[str, str] = {}

        def attempt(path: str, action: Callable[[], None]) -> None:
            try:
                action()
                restored.append(path)
            except (PathEscape, OSError) as exc:
                refused[path] = str(exc)

        writes = [path for status, path in entries if status != "D"]
        gone = [path for status, path in entries if status == "D"]
        # A link the turn put where the checkpoint has a folder goes first: its replacement is written, not
        # its target.
        folders = {str(parent) for path in writes for parent in PurePosixPath(path).parents}
        for path in gone:
            if path in folders and (self.root / path).is_symlink():
                attempt(path, lambda p=path: self._remove(workspace, p))
        for path in writes:
            attempt(path, lambda p=path: self._write_from(workspace, target, p))
        # A file absent from the checkpoint may have been there but ignored (e.g. .gitignore changed since):
        # with the checkpoint's ignore files back in place, only files that are not ignored get removed.
        done = set(restored)
        ignored = set(self._ignored([p for p in gone if p not in done]))
        for path in gone:
            if path not in ignored and path not in done:
                attempt(path, lambda p=path: self._remove(workspace, p))
        self._snapshot_tree("index-restore")  # refresh the stat cache so the next capture is cheap
        if refused:
            raise RestoreIncomplete(sorted(restored), refused)
        return sorted(restored)

    def _ignored(self, paths: list[str]) -> list[str]:
        if not paths:
            return []
        result = self._run("check-ignore", "--no-index", "-z", "--stdin", data="\0".join(paths).encode())
        if result.returncode not in (0, 1):  # 1 means "none of them is ignored"
            raise CheckpointError(f"git check-ignore failed: {result.error_text}")
        return [p for p in result.stdout.decode().split("\0") if p]

    def _write_from(self, workspace: Workspace, tree: str, path: str) -> None:
        mode, kind, blob = self._git("ls-tree", "-z", tree, "--", path, work_tree=False).decode().split("\0")[0] \
            .split("\t", 1)[0].split(" ")
        if kind != "blob":
            return  # a nested repository (gitlink): its own history, not ours to rewrite
        data = self._git("cat-file", "blob", blob, work_tree=False)
        dest = workspace.exact(path)
        workspace.refuse_protected(dest)
        if dest.is_symlink() or (dest.exists() and dest.is_dir()):
            self._remove(workspace, path)
        if mode == "120000":
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(data.decode(), dest)
        else:
            workspace.write_bytes(dest, data, 0o755 if mode == "100755" else 0o644)

    def _remove(self, workspace: Workspace, path: str) -> None:
        dest = workspace.exact(path)
        workspace.refuse_protected(dest)
        if dest.is_symlink() or dest.is_file():
            dest.unlink()
        parent = dest.parent
        while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent

    def drop(self, checkpoints: list[Checkpoint]) -> None:
        for checkpoint in checkpoints:
            self._git("update-ref", "-d", checkpoint.ref, work_tree=False)

    def prune(self, max_age_days: float = 30, max_count: int = 100) -> int:
        """Drop checkpoints older than max_age_days, and all but the newest max_count per session."""
        cutoff = time.time() - max_age_days * 86400
        by_session: dict[str, list[Checkpoint]] = {}
        for checkpoint in self._list(f"{SESSION_REFS}/") + self.safety():
            by_session.setdefault(checkpoint.ref.rsplit("/", 1)[0], []).append(checkpoint)
        dropped = [c for group in by_session.values() for k, c in enumerate(group)
                   if c.created_at < cutoff or k >= max_count]
        self.drop(dropped)
        if dropped:
            self._git("prune", "--expire=now", work_tree=False)
        return len(dropped)


class CheckpointError(Exception):
    pass


class RestoreIncomplete(CheckpointError):
    """Some paths could not be restored safely; everything else was."""

    def __init__(self, restored: list[str], refused: dict[str, str]) -> None:
        self.restored, self.refused = restored, refused
        lines = [f"restored {len(restored)} file(s), but could not restore {len(refused)}:"]
        lines += [f"  {path}: {reason}" for path, reason in sorted(refused.items())]
        super().__init__("\n".join(lines))


def undo_last_turn(repo_root: Path | str, session_id: str, store_dir: Path | str | None = None) -> list[str]:
    """Restore the files as they were before the last turn that changed something; [] when nothing to undo."""
    store = CheckpointStore(repo_root, store_dir)
    checkpoints = store.list(session_id)
    now = store.current_tree()
    for k, checkpoint in enumerate(checkpoints):
        if checkpoint.tree != now:
            restored = store.restore(checkpoint.id)
            store.drop(checkpoints[:k + 1])
            return restored
    store.drop(checkpoints)  # every checkpoint equals the present: nothing left to undo
    return []


def rewind(repo_root: Path | str, session_id: str, n: int, store_dir: Path | str | None = None) -> list[str]:
    """Restore the state before the last `n` turns of the session (n=1 is the newest checkpoint)."""
    store = CheckpointStore(repo_root, store_dir)
    checkpoints = store.list(session_id)
    if n < 1 or n > len(checkpoints):
        raise CheckpointError(f"cannot rewind {n} turns: session {session_id} has {len(checkpoints)} checkpoints")
    restored = store.restore(checkpoints[n - 1].id)
    store.drop(checkpoints[:n])
    return restored
