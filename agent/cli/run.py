"""`dsv4-code run --headless TASK ...`: the flags, and their checks before any model loads (headless.py runs it)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UsageError

if TYPE_CHECKING:
    from ..config import Settings
    from ..repo import Repo


def add_run_parser(subparsers: Any) -> argparse.ArgumentParser:
    run = subparsers.add_parser("run", help="run a task without the TUI (CI)")
    run.add_argument("task", help="the task; '-' reads it from standard input")
    run.add_argument("--headless", action="store_true", help="no terminal UI (the only mode of 'run' today)")
    run.add_argument("--output-format", choices=["text", "json", "stream-json"], default="text")
    run.add_argument("--patch-out", type=Path, metavar="FILE", help="also write the unified diff here")
    run.add_argument("--max-steps", type=int, metavar="N", help="model requests before the run stops (exit 1)")
    run.add_argument("--max-tokens", type=int, metavar="N", help="prompt+completion tokens before the run stops (exit 1)")
    run.add_argument("--timeout", type=float, metavar="SECONDS", help="wall time before the run stops (exit 1)")
    run.add_argument("--allow-shell", action="store_true", help="allow shell commands other than the test command")
    run.add_argument("--resume", dest="run_resume", metavar="ID", help="continue this session")
    run.add_argument("-c", "--continue", dest="run_continue", action="store_true", help="continue the latest session")
    run.add_argument("--compact-at", type=float, metavar="F",
                     help="compact the conversation once the context is this full, 0 < F <= 1 (default 0.8)")
    return run


def read_task(arg: str) -> str:
    """The task text; bytes that are not UTF-8 (from stdin or a mis-encoded argument) become U+FFFD."""
    raw = sys.stdin.buffer.read() if arg == "-" else arg.encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "replace")


def patch_out_problem(path: Path) -> str | None:
    if path.is_dir():
        return "is a folder"
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        return f"its folder {parent} does not exist"
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return "cannot be written"
    return None


def run_command(repo: Repo, settings: Settings, args: argparse.Namespace) -> int:
    if not args.headless:
        raise UsageError("'dsv4-code run' needs --headless (the interactive agent is plain 'dsv4-code')")
    from ..custom_commands import UnknownCommand, expand_prompt

    try:
        task = expand_prompt(read_task(args.task), repo.root)  # `/name args`: a custom command (.dsv4/commands/)
    except UnknownCommand as exc:
        raise UsageError(str(exc)) from None
    if not task.strip():
        raise UsageError("the task is empty")
    if args.patch_out is not None:
        problem = patch_out_problem(args.patch_out)
        if problem:  # found now, not after the whole run
            raise UsageError(f"--patch-out {args.patch_out}: {problem}")
    for name in ("max_steps", "max_tokens"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    from ..session import resolve_session
    from ..sessions import SessionStore
    from .headless import run_headless

    resume_id = resolve_session(SessionStore.open_default(), repo, args.run_resume, args.run_continue)
    return run_headless(repo, settings, task, output_format=args.output_format, patch_out=args.patch_out,
                        max_steps=args.max_steps, max_tokens=args.max_tokens, timeout_s=args.timeout,
                        allow_shell=args.allow_shell, resume_id=resume_id)
