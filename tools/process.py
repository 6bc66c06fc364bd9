"""Running commands for tools: an argv (never a shell string), a process group, a deadline, a cancel event,
an output cap, an environment without secrets, and nothing left running afterwards.

Every subprocess a tool starts goes through `run_command` (or, for git, `tools.gitcmd`, which uses the same
`safe_environment`), so these guarantees hold for all of them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

OUTPUT_CAP = 30_000
# What is kept of a command's output while it runs: a runaway `yes` must not fill the memory.
CAPTURE_HEAD = 64 * 1024
CAPTURE_TAIL = 192 * 1024
POLL_S = 0.05
TERM_GRACE_S = 0.5

# Variables that hold a backend's key in every setup we know; the configured `api_key_env` comes on top.
WELL_KNOWN_SECRETS = frozenset({"DEEPSEEK_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"})
# DSV4_* settings that are plain paths or switches; every other DSV4_* may carry a key or a URL with one.
HARMLESS_DSV4 = frozenset({"DSV4_HOME"})


def safe_environment(secret_names: Iterable[str] = (), overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without backend keys and DSV4_* settings, plus `overrides`."""
    dropped = WELL_KNOWN_SECRETS | set(secret_names)
    env = {name: value for name, value in os.environ.items()
           if name not in dropped and not (name.startswith("DSV4_") and name not in HARMLESS_DSV4)}
    env.update(overrides or {})
    return env


@dataclass
class CommandOutcome:
    exit_code: int
    output: str
    timed_out: bool
    cancelled: bool = False


class CommandNotRun(Exception):
    """The argv could not be started: no such program, not executable, or an argument the OS refuses."""


class _Capture:
    """Reads a pipe to EOF on its own thread, keeping a bounded head and tail of what came."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while chunk := os.read(self.fd, 65536):
            room = CAPTURE_HEAD - len(self.head)
            self.head += chunk[:room]
            self.tail += chunk[room:] if room > 0 else chunk
            if len(self.tail) > CAPTURE_TAIL:
                self.dropped += len(self.tail) - CAPTURE_TAIL
                del self.tail[:len(self.tail) - CAPTURE_TAIL]

    def text(self) -> str:
        cut = f"\n[... {self.dropped} bytes of output cut ...]\n".encode() if self.dropped else b""
        return bytes(self.head + cut + self.tail).decode("utf-8", "replace")


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass  # the whole group is already gone


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, give it a moment to exit cleanly, then SIGKILL whatever is left."""
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=TERM_GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()


def run_command(argv: list[str], cwd: Path, timeout_s: float, *, env: Mapping[str, str] | None = None,
                secret_names: Iterable[str] = (), environment: Mapping[str, str] | None = None,
                cancel: threading.Event | None = None, deadline: float | None = None) -> CommandOutcome:
    """Run `argv` (no shell) in its own process group until it exits, `timeout_s` passes, the monotonic
    `deadline` passes or `cancel` is set; the group is then stopped within about a second.

    The child's environment is `environment` when given (already made safe, e.g. by tools.gitcmd), else
    `safe_environment(secret_names)` with `env` on top.
    """
    stop_at = time.monotonic() + timeout_s
    if deadline is not None:
        stop_at = min(stop_at, deadline)
    try:
        proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env=dict(environment) if environment is not None else safe_environment(secret_names, env))
    except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
        raise CommandNotRun(f"cannot run {argv[0]!r}: {exc.strerror}") from None
    except ValueError as exc:  # an embedded NUL byte
        raise CommandNotRun(f"cannot run {argv[0]!r}: {exc}") from None
    assert proc.stdout is not None
    capture = _Capture(proc.stdout.fileno())
    timed_out = cancelled = False
    while proc.poll() is None:
        if cancel is not None and cancel.is_set():
            cancelled = True
        elif time.monotonic() >= stop_at:
            timed_out = True
        if cancelled or timed_out:
            _stop_group(proc)
            break
        try:
            proc.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            pass
    # The command's own children (`cmd &`) would keep the pipe open and run on: nothing outlives a command.
    _signal_group(proc.pid, signal.SIGKILL)
    capture.thread.join(timeout=1.0)
    if not capture.thread.is_alive():  # else a process that left the group holds the pipe; its reader is a daemon
        proc.stdout.close()
    return CommandOutcome(exit_code=proc.returncode, output=capture.text(), timed_out=timed_out, cancelled=cancelled)


def cap_output(text: str, limit: int = OUTPUT_CAP) -> str:
    """Keep the head and the tail: errors are usually at the end, the command's context at the start."""
    if len(text) <= limit:
        return text
    head = limit // 3
    tail = limit - head
    return f"{text[:head]}\n[... {len(text) - limit} characters cut ...]\n{text[-tail:]}"
