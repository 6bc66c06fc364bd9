"""Running commands for tools: a process group, a timeout, an output cap, and nothing left running."""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

OUTPUT_CAP = 30_000


@dataclass
class CommandOutcome:
    exit_code: int
    output: str
    timed_out: bool


def run_command(command: str | list[str], cwd: Path, timeout_s: float, env: dict[str, str] | None = None) -> CommandOutcome:
    proc = subprocess.Popen(
        command, cwd=cwd, shell=isinstance(command, str), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})},
    )
    try:
        raw, _ = proc.communicate(timeout=timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raw, _ = proc.communicate()
        timed_out = True
    return CommandOutcome(exit_code=proc.returncode, output=raw.decode("utf-8", "replace"), timed_out=timed_out)


def cap_output(text: str, limit: int = OUTPUT_CAP) -> str:
    """Keep the head and the tail: errors are usually at the end, the command's context at the start."""
    if len(text) <= limit:
        return text
    head = limit // 3
    tail = limit - head
    return f"{text[:head]}\n[... {len(text) - limit} characters cut ...]\n{text[-tail:]}"
