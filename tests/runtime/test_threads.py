"""CPU threads of the in-process engines: `--threads` / the `threads` setting, else OMP_NUM_THREADS (which the
engines used to override with every CPU of the host), else the CPUs this process may run on. Engines set
torch's global thread count, so the end-to-end checks run in their own processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dsv4.agent.config import Settings
from dsv4.runtime.engine.device import cpu_threads
from dsv4.runtime.errors import RuntimeModelError


def test_explicit_then_environment_then_affinity(monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cpu_threads(5) == 5 and cpu_threads(None) == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert cpu_threads(None) == len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert cpu_threads(None) == len(os.sched_getaffinity(0))
    with pytest.raises(RuntimeModelError, match="at least 1"):
        cpu_threads(0)


def test_setting_from_environment_and_its_bounds(monkeypatch) -> None:
    monkeypatch.setenv("DSV4_THREADS", "1")
    assert Settings().threads == 1
    monkeypatch.delenv("DSV4_THREADS")
    assert Settings().threads is None
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        Settings(threads=0)


def _generate(smollm_path, *flags: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "dsv4.agent.cli", "models", "generate", str(smollm_path), "hi",
            "--max-tokens", "1", "--json", *flags]
    return subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300)


def test_models_generate_uses_the_thread_count_asked_for(smollm_path) -> None:
    done = _generate(smollm_path, "--threads", "1", env={"OMP_NUM_THREADS": "2"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["threads"] == 1
    done = _generate(smollm_path, env={"OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["threads"] == 1


def test_zero_threads_is_a_clear_error(smollm_path) -> None:
    done = _generate(smollm_path, "--threads", "0")
    assert done.returncode != 0 and "threads must be at least 1" in done.stderr and "Traceback" not in done.stderr


def test_backend_load_applies_the_setting(smollm_path) -> None:
    code = ("import sys, torch; from dsv4.agent.backends.inprocess import InProcessBackend;"
            "InProcessBackend.load(sys.argv[1], threads=1); print(torch.get_num_threads())")
    done = subprocess.run([sys.executable, "-c", code, str(smollm_path)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "2"}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
