"""Exit codes and the one place that maps an exception to one and a one-line message (never a traceback).

0 done, 1 not done (tests failing, an action denied, a budget ran out, nothing to undo), 2 usage or
configuration error, 3 backend failure, 4 internal error (a bug of ours: one line, the traceback only with --debug). A new error kind (or a new code) is one entry in `user_error`.
"""

from __future__ import annotations

import sys

EXIT_DONE, EXIT_NOT_DONE, EXIT_USAGE, EXIT_BACKEND, EXIT_INTERNAL = 0, 1, 2, 3, 4


class UsageError(Exception):
    """A wrong flag or argument: exit 2 with its message (and, for `run --output-format json`, an error report)."""


def fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"dsv4-code: error: {message}", file=sys.stderr)
    return code


def user_error(exc: BaseException, command: str | None) -> tuple[int, str] | None:
    """(exit code, message) for an error the user can act on; None for a bug (which propagates)."""
    from pydantic import ValidationError

    from ...memory.types import EngramError
    from ...runtime.errors import ModelNotFound, RuntimeModelError
    from ..backends.resolve import BackendConfigError
    from ..config_error import ConfigError
    from ..repo import NotARepository
    from ..errors import SessionCommandError
    from ..sessions import SessionNotFound

    if isinstance(exc, UsageError):
        return EXIT_USAGE, str(exc)
    if isinstance(exc, ConfigError):  # every problem, each naming its file
        return EXIT_USAGE, str(exc)
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return EXIT_USAGE, f"bad configuration: {'.'.join(map(str, first['loc']))}: {first['msg']}"
    if isinstance(exc, EngramError):  # e.g. pinned memory over its budget: the user must unpin, never a silent cut
        return EXIT_USAGE, str(exc) if command == "memory" else f"memory: {exc}"
    if isinstance(exc, (BackendConfigError, SessionNotFound, NotARepository, ModelNotFound)):
        return EXIT_USAGE, str(exc)
    if isinstance(exc, SessionCommandError):
        return EXIT_NOT_DONE, str(exc)
    if isinstance(exc, RuntimeModelError):
        return EXIT_BACKEND, str(exc)
    return None
