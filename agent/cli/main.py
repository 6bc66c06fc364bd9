"""`dsv4-code`: the parser, the dispatch to one module per command, and the TUI entry.

Heavy imports stay inside the command functions so `dsv4-code --version` starts in a fraction of a second.
The TUI is imported only inside `_tui`: nothing else in the product imports `dsv4.tui`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from dsv4 import __version__

from ..redact import redact
from .debug_log import start_debug_log
from .errors import EXIT_BACKEND, EXIT_INTERNAL, EXIT_NOT_DONE, EXIT_USAGE, fail, user_error

if TYPE_CHECKING:
    from ..config import LoadedSettings, Settings
    from ..repo import Repo

# Nothing is logged to the terminal (Textual draws there, CI parses stdout); --debug adds a file handler.
logging.getLogger("dsv4").addHandler(logging.NullHandler())

MODEL_FLAGS = ("model", "base_url", "api_key_env", "backend", "script", "permission_mode", "context_window", "compact_at", "threads")


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
    group.add_argument("--threads", default=argparse.SUPPRESS, type=int, metavar="N",
                       help="in-process: CPU threads the model computes with (default: OMP_NUM_THREADS, else every CPU "
                            "this process may use; on a busy machine fewer is faster)")


def _add_common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="on an internal error print the traceback; log to $DSV4_HOME/logs/")
    parser.add_argument("--trust-repo", action="store_true", default=argparse.SUPPRESS,
                        help="apply this repository's own .dsv4/config.toml for this run (see 'dsv4-code trust')")


def build_parser() -> argparse.ArgumentParser:
    from .completion import add_completion_parser
    from .context import add_context_parser
    from .init import add_init_parser
    from .run import add_run_parser
    from .mcp import add_mcp_parser
    from .memory import add_memory_parser
    from .models import add_models_parser
    from .sessions import add_schema_parser, add_sessions_parser
    from ..kv_cli import add_kv_parser
    from .trust import add_trust_parser
    from .undo import add_undo_parser

    parser = argparse.ArgumentParser(prog="dsv4-code", description="A terminal coding agent for DeepSeek-V4-class models.")
    parser.add_argument("--version", action="version", version=f"dsv4-code {__version__}")
    parser.add_argument("-c", "--continue", dest="continue_latest", action="store_true", help="resume the latest session of this repo")
    parser.add_argument("-r", "--resume", nargs="?", const="", default=None, metavar="ID", help="resume a session (no ID: a picker)")
    _add_model_flags(parser)
    _add_common_flags(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = add_run_parser(sub)
    _add_model_flags(run)
    _add_common_flags(run)
    add_trust_parser(sub)
    add_kv_parser(sub)
    add_sessions_parser(sub)
    add_schema_parser(sub)
    add_undo_parser(sub)
    add_memory_parser(sub)
    add_context_parser(sub)
    add_models_parser(sub)
    add_mcp_parser(sub)
    add_init_parser(sub)
    add_completion_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    log_file = start_debug_log(args) if debug else None
    try:
        return _dispatch(args)
    except BrokenPipeError:
        # `dsv4-code ... | head` closed the pipe: not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_NOT_DONE)
    except Exception as exc:
        mapped = user_error(exc, args.command)
        if mapped is None:  # a bug of ours: one line (the traceback with --debug, and in the log)
            logging.getLogger("dsv4").exception("internal error")
            if debug:
                traceback.print_exc()
            hint = f"; details in {log_file}" if log_file else "; run again with --debug for the traceback"
            mapped = EXIT_INTERNAL, f"internal error: {type(exc).__name__}: {exc}{hint}"
        code, message = mapped
        _json_error_report(args, code, message)
        return fail(redact(message), code)


def _json_error_report(args: argparse.Namespace, code: int, message: str) -> None:
    """`run --output-format json|stream-json` prints one report whatever happens: here, the error's."""
    if args.command != "run" or getattr(args, "output_format", "text") == "text":
        return
    from ..report import HeadlessReport, TestsReport, UsageReport
    from .headless import print_report

    kind = {EXIT_USAGE: "usage", EXIT_BACKEND: "backend", EXIT_INTERNAL: "internal"}.get(code, "not_done")
    print_report(HeadlessReport(status="error", exit_code=code, error=message, error_kind=kind, summary=message,
                                patch="", files_changed=[], tests=TestsReport(), usage=UsageReport(), session_id=None,
                                denied_actions=[]), args.output_format)


def _dispatch(args: argparse.Namespace) -> int:
    command = args.command
    if command in ("memory", "kv"):  # they open stores under DSV4_HOME without loading the config
        from ..config import check_home
        check_home()
    if command == "memory":
        from .memory import run_memory_command
        return run_memory_command(args, _repo_or_none())
    if command == "models":
        from .models import run_models_command
        return run_models_command(args)
    if command == "completion":
        from .completion import run_completion_command
        return run_completion_command(args, build_parser())
    if command == "schema":
        from .sessions import run_schema_command
        return run_schema_command(args.which)
    if command == "kv":
        from ..kv_cli import run_kv_command
        return run_kv_command(args)
    from ..config import load_config
    from ..repo import find_repo

    repo = find_repo(Path.cwd())
    if command == "trust":
        from .trust import run_trust_command
        return run_trust_command(repo, args)
    if command == "init":
        from .init import run_init_command
        return run_init_command(repo, args)
    loaded = load_config(repo.root, trusted=True if getattr(args, "trust_repo", False) else None,
                         **{name: getattr(args, name, None) for name in MODEL_FLAGS})
    # The TUI (no command) asks whether to trust the repository instead of naming the ignored settings.
    for notice in loaded.notices() if command is not None else filter(None, [loaded.legacy_notice]):
        print(f"dsv4-code: {notice}", file=sys.stderr)
    if command == "mcp":
        from .mcp import run_mcp_command
        return run_mcp_command(repo, loaded, args)
    settings = loaded.settings
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
    return _tui(repo, loaded, args)


def _repo_or_none() -> Repo | None:
    """None outside a repository: user-scope memory works anywhere."""
    from ..repo import NotARepository, find_repo

    try:
        return find_repo(Path.cwd())
    except NotARepository:
        return None


def _tui(repo: Repo, loaded: LoadedSettings, args: argparse.Namespace) -> int:
    from ...tui.app import run_tui  # the one import of the TUI in the product, and only when it starts
    from ..backends.resolve import check_model
    from ..config import load_config
    from ..session import resolve_session
    from ..sessions import SessionStore

    check_model(loaded.settings)  # a bad --model is one line and exit 2, not a screen that can never work
    pick = args.resume == ""
    resume_id = None if pick else resolve_session(SessionStore.open_default(), repo, args.resume, args.continue_latest)

    def trusted_settings() -> Settings:  # once the user trusts the repository in the TUI's prompt
        return load_config(repo.root, trusted=True, **{name: getattr(args, name, None) for name in MODEL_FLAGS}).settings

    return run_tui(repo, loaded.settings, resume_id=resume_id, pick_session=pick,
                   ignored_keys=loaded.ignored_repo_keys, trusted_settings=trusted_settings)


if __name__ == "__main__":
    sys.exit(main())
