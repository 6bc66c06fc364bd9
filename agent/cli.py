"""`dsv4-code`: the command line (DESIGN.md §1). Heavy imports stay inside the command functions so
`dsv4-code --version` starts in a fraction of a second."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dsv4 import __version__

EXIT_USAGE = 2
EXIT_BACKEND = 3
MODEL_FLAGS = ("model", "base_url", "api_key_env", "backend", "script", "permission_mode", "context_window")


def _add_model_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    # SUPPRESS so a flag given before the subcommand is not reset by the subcommand's own default.
    group.add_argument("--model", default=argparse.SUPPRESS, metavar="PATH_OR_NAME",
                       help="in-process: a GGUF file, HF checkpoint folder or 'smollm2-135m'; with --base-url: the served model name")
    group.add_argument("--base-url", default=argparse.SUPPRESS, metavar="URL", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    group.add_argument("--api-key-env", default=argparse.SUPPRESS, metavar="VAR", help="environment variable that holds the API key")
    group.add_argument("--backend", default=argparse.SUPPRESS, choices=["auto", "openai", "inprocess", "scripted"])
    group.add_argument("--script", default=argparse.SUPPRESS, type=Path, metavar="FILE.json", help="scripted backend: a JSON list of assistant turns")
    group.add_argument("--permission-mode", default=argparse.SUPPRESS, choices=["ask", "auto-edit", "full-auto"])
    group.add_argument("--context-window", default=argparse.SUPPRESS, type=int, metavar="N",
                       help="the model's context window in tokens (overrides what the server reports)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dsv4-code", description="A terminal coding agent for DeepSeek-V4-class models.")
    parser.add_argument("--version", action="version", version=f"dsv4-code {__version__}")
    parser.add_argument("-c", "--continue", dest="continue_latest", action="store_true", help="resume the latest session of this repo")
    parser.add_argument("-r", "--resume", nargs="?", const="", default=None, metavar="ID", help="resume a session (no ID: a picker)")
    _add_model_flags(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run a task without the TUI (CI)")
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
    _add_model_flags(run)

    sessions = sub.add_parser("sessions", help="list this repository's sessions")
    sessions.add_argument("--json", action="store_true")

    schema = sub.add_parser("schema", help="JSON schema of the headless report or the stream-json events")
    schema.add_argument("which", choices=["report", "events"], nargs="?", default="report")

    undo = sub.add_parser("undo", help="restore the files changed by the last turn")
    undo.add_argument("--session", metavar="ID", help="undo in this session (default: the latest)")
    undo.add_argument("--turns", type=int, default=1, metavar="N", help="go back N turns (default 1)")
    undo.add_argument("--list", action="store_true", help="list the session's checkpoints instead")
    from .memory_cli import add_memory_parser
    add_memory_parser(sub)
    from .context_cli import add_context_parser
    add_context_parser(sub)

    try:
        from .models_cli import add_models_parser
    except ImportError:
        models = sub.add_parser("models", help="list, inspect and run local models")
        models.add_argument("rest", nargs=argparse.REMAINDER)
    else:
        add_models_parser(sub)
    return parser


def fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"dsv4-code: error: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # `dsv4-code ... | head` closed the pipe: not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command
    if command == "models" and hasattr(args, "rest"):
        return fail("'dsv4-code models' is not built yet: it arrives with issue #4 (in-process runtime engine)")
    if command == "memory":
        return _memory(args)
    if command == "models":
        from .models_cli import run_models_command
        return run_models_command(args)
    if command == "schema":
        return _schema(args.which)
    return _with_repo(args)


def _memory(args: argparse.Namespace) -> int:
    from .memory_cli import run_memory_command
    from .repo import NotARepository, find_repo

    try:
        repo = find_repo(Path.cwd())
    except NotARepository:
        repo = None  # user-scope memory works anywhere
    return run_memory_command(args, repo)


def _schema(which: str) -> int:
    import json

    from .report import events_schema, report_schema

    print(json.dumps(report_schema() if which == "report" else events_schema(), indent=2))
    return 0


def _with_repo(args: argparse.Namespace) -> int:
    from .backends.resolve import BackendConfigError
    from .config import load_settings
    from .config_error import ConfigError
    from .repo import NotARepository, find_repo
    from ..memory import EngramError
    from .sessions import SessionNotFound
    from pydantic import ValidationError

    try:
        repo = find_repo(Path.cwd())
    except NotARepository as exc:
        return fail(str(exc))
    flags = {name: getattr(args, name, None) for name in MODEL_FLAGS}
    try:
        settings = load_settings(repo.root, **flags)
    except ConfigError as exc:  # every problem, each naming its file
        return fail(str(exc))
    except ValidationError as exc:
        first = exc.errors()[0]
        return fail(f"bad configuration: {'.'.join(map(str, first['loc']))}: {first['msg']}")
    try:
        if args.command == "sessions":
            return _sessions(repo, args.json)
        if args.command == "undo":
            return _undo(repo, args.session, args.turns, args.list)
        if args.command == "context":
            from .context_cli import repo_budget, run_context_command
            return run_context_command(args, repo, default_budget=repo_budget(settings.context_window or 131072))
        if args.command == "run":
            return _run(repo, settings, args)
        return _tui(repo, settings, args)
    except BackendConfigError as exc:
        return fail(str(exc))
    except SessionNotFound as exc:
        return fail(str(exc))
    except EngramError as exc:  # e.g. pinned memory over its budget: the user must unpin, never a silent cut
        return fail(f"memory: {exc}")


def _sessions(repo, as_json: bool) -> int:
    import json

    from .runner import open_store

    sessions = open_store().list(repo.identity)
    if as_json:
        print(json.dumps([s.__dict__ for s in sessions], indent=2))
        return 0
    if not sessions:
        print("no sessions in this repository yet")
    for s in sessions:
        print(f"{s.id}  {s.updated_at[:16].replace('T', ' ')}  {s.status:<7} {s.turns:>3} turns  {s.model}  {s.title}")
    return 0


def _undo(repo, session: str | None, turns: int, list_only: bool) -> int:
    import time

    from ..tools.checkpoints import CheckpointError, CheckpointStore, rewind, undo_last_turn
    from .runner import open_store, resolve_session

    if turns < 1:
        return fail("--turns must be at least 1")
    store = open_store()
    session_id = resolve_session(store, repo, session, continue_latest=session is None)
    if list_only:
        checkpoints = CheckpointStore(repo.root).list(session_id)
        print(f"{len(checkpoints)} checkpoint{'s' * (len(checkpoints) != 1)} in session {session_id} (newest first):")
        for n, checkpoint in enumerate(checkpoints, start=1):
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(checkpoint.created_at))
            print(f"  --turns {n}: before turn {checkpoint.turn}, taken {stamp}  {checkpoint.id[:12]}")
        return 0
    try:
        restored = undo_last_turn(repo.root, session_id) if turns == 1 else rewind(repo.root, session_id, turns)
    except CheckpointError as exc:
        return fail(str(exc), 1)
    if not restored:
        print(f"nothing to undo in session {session_id}")
        return 1
    store.append(session_id, store.turns(session_id), "undo", {"turns": turns, "restored": restored})
    print(f"restored {len(restored)} file{'s' * (len(restored) != 1)} of session {session_id}:")
    for path in restored:
        print(f"  {path}")
    return 0


def _run(repo, settings, args: argparse.Namespace) -> int:
    from .headless import run_headless
    from .runner import open_store, resolve_session

    if not args.headless:
        return fail("'dsv4-code run' needs --headless (the interactive agent is plain 'dsv4-code')")
    task = sys.stdin.read() if args.task == "-" else args.task
    if not task.strip():
        return fail("the task is empty")
    for name in ("max_steps", "max_tokens"):
        value = getattr(args, name)
        if value is not None and value < 1:
            return fail(f"--{name.replace('_', '-')} must be at least 1")
    resume_id = resolve_session(open_store(), repo, args.run_resume, args.run_continue)
    return run_headless(repo, settings, task, output_format=args.output_format, patch_out=args.patch_out,
                        max_steps=args.max_steps, max_tokens=args.max_tokens, timeout_s=args.timeout,
                        allow_shell=args.allow_shell, resume_id=resume_id)


def _tui(repo, settings, args: argparse.Namespace) -> int:
    from ..tui.app import run_tui
    from .runner import open_store, resolve_session

    store = open_store()
    pick = args.resume == ""
    resume_id = None if pick else resolve_session(store, repo, args.resume, args.continue_latest)
    return run_tui(repo, settings, resume_id=resume_id, pick_session=pick)


if __name__ == "__main__":
    sys.exit(main())
