"""`dsv4-code`: the parser, the dispatch to one module per command, and the TUI entry.

Heavy imports stay inside the command functions so `dsv4-code --version` starts in a fraction of a second.
The TUI is imported only inside `_tui`: nothing else in the product imports `dsv4.tui`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from dsv4 import __version__

from .errors import fail, user_error

if TYPE_CHECKING:
    from ..config import Settings
    from ..repo import Repo

MODEL_FLAGS = ("model", "base_url", "api_key_env", "backend", "script", "permission_mode", "context_window", "compact_at")


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
                       help="tokens of context the model has; overrides the backend's figure (the meter and compaction use it)")


def build_parser() -> argparse.ArgumentParser:
    from .context import add_context_parser
    from .run import add_run_parser
    from .memory import add_memory_parser
    from .models import add_models_parser
    from .sessions import add_schema_parser, add_sessions_parser
    from .undo import add_undo_parser

    parser = argparse.ArgumentParser(prog="dsv4-code", description="A terminal coding agent for DeepSeek-V4-class models.")
    parser.add_argument("--version", action="version", version=f"dsv4-code {__version__}")
    parser.add_argument("-c", "--continue", dest="continue_latest", action="store_true", help="resume the latest session of this repo")
    parser.add_argument("-r", "--resume", nargs="?", const="", default=None, metavar="ID", help="resume a session (no ID: a picker)")
    _add_model_flags(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_model_flags(add_run_parser(sub))
    add_sessions_parser(sub)
    add_schema_parser(sub)
    add_undo_parser(sub)
    add_memory_parser(sub)
    add_context_parser(sub)
    add_models_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except BrokenPipeError:
        # `dsv4-code ... | head` closed the pipe: not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        mapped = user_error(exc, args.command)
        if mapped is None:
            raise
        code, message = mapped
        return fail(message, code)


def _dispatch(args: argparse.Namespace) -> int:
    command = args.command
    if command == "memory":
        from .memory import run_memory_command
        return run_memory_command(args, _repo_or_none())
    if command == "models":
        from .models import run_models_command
        return run_models_command(args)
    if command == "schema":
        from .sessions import run_schema_command
        return run_schema_command(args.which)
    from ..config import load_settings
    from ..repo import find_repo

    repo = find_repo(Path.cwd())
    settings = load_settings(repo.root, **{name: getattr(args, name, None) for name in MODEL_FLAGS})
    if command == "sessions":
        from .sessions import run_sessions_command
        return run_sessions_command(repo, args.json)
    if command == "undo":
        from .undo import run_undo_command
        return run_undo_command(repo, args.session, args.turns, args.list)
    if command == "context":
        from ..context import DEFAULT_WINDOW, repo_budget
        from .context import run_context_command
        return run_context_command(args, repo, default_budget=repo_budget(settings.context_window or DEFAULT_WINDOW))
    if command == "run":
        from .run import run_command
        return run_command(repo, settings, args)
    return _tui(repo, settings, args)


def _repo_or_none() -> Repo | None:
    """None outside a repository: user-scope memory works anywhere."""
    from ..repo import NotARepository, find_repo

    try:
        return find_repo(Path.cwd())
    except NotARepository:
        return None


def _tui(repo: Repo, settings: Settings, args: argparse.Namespace) -> int:
    from ...tui.app import run_tui  # the one import of the TUI in the product, and only when it starts
    from ..session import resolve_session
    from ..sessions import SessionStore

    pick = args.resume == ""
    resume_id = None if pick else resolve_session(SessionStore.open_default(), repo, args.resume, args.continue_latest)
    return run_tui(repo, settings, resume_id=resume_id, pick_session=pick)


if __name__ == "__main__":
    sys.exit(main())
