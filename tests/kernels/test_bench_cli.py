"""evals/kernel_bench.py on a machine without CUDA: a clear message and status 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_kernel_bench_without_cuda_says_so() -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run([sys.executable, str(ROOT / "evals" / "kernel_bench.py"), "--only", "kernels"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 2
    assert "no CUDA device" in run.stderr and "Traceback" not in run.stderr
    assert run.stdout == ""  # nothing measured, nothing claimed
