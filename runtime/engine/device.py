"""Where an in-process engine runs: `cpu`, `cuda` (a clear error when there is none) or `auto` (CUDA when
available). On CUDA the weights use the formats torch runs there (bf16 or fp32): the int8/int4 packed
formats are CPU kernels."""

from __future__ import annotations

import os

import torch

from ..errors import RuntimeModelError

DEVICES = ("auto", "cpu", "cuda")
CUDA_PRECISIONS = ("fp32", "bf16")


def resolve_device(device: str | None) -> torch.device:
    name = device or "cpu"
    if name not in DEVICES and not name.startswith("cuda:"):
        raise RuntimeModelError(f"device {device!r} is not one of {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeModelError(f"device {name!r} was asked for, but this torch sees no CUDA device "
                                f"(torch {torch.__version__}; install a CUDA build of torch, or use --device cpu)")
    return torch.device(name)


def cpu_threads(threads: int | None) -> int:
    """The CPU threads an engine computes with: `threads` when given, else `OMP_NUM_THREADS` when set, else the
    CPUs this process may run on (its affinity mask, which honours `taskset` and container cpusets, not every
    CPU of the host). More threads than free cores is far slower, not a little: a busy machine wants fewer."""
    if threads is not None:
        if threads < 1:
            raise RuntimeModelError(f"threads must be at least 1, not {threads}")
        return threads
    from_env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if from_env.isdigit() and int(from_env) > 0:
        return int(from_env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def precision_on(device: torch.device, precision: str | None) -> str | None:
    """The precision an engine loads on `device`: unchanged on the CPU; on CUDA `auto` is bf16 and the
    CPU-only integer formats are refused before any weight is read."""
    if device.type != "cuda":
        return precision
    if precision in (None, "auto"):
        return "bf16"
    if precision not in CUDA_PRECISIONS:
        raise RuntimeModelError(f"precision {precision!r} runs on CPU kernels only; on CUDA use one of "
                                f"{', '.join(CUDA_PRECISIONS)} (or auto)")
    return precision


def quantised_weight_formats(device: torch.device | None, precision: str) -> frozenset[str]:
    """The checkpoint weight formats a DeepSeek-V4 model keeps quantised on `device` at `precision`: on CUDA with
    the kernels (triton installed, not DSV4_KERNELS=0) and packed weights, FP4 always and FP8 where Triton has
    e4m3 (compute capability 8.9+); none on the CPU (bitwise the de-quantised path) or in the fp32 exact mode."""
    from ...kernels import dispatch

    if device is None or device.type != "cuda" or precision == "fp32":
        return frozenset()
    if not (dispatch.triton_installed() and dispatch.kernels_on()):
        return frozenset()  # the references would de-quantise every weight on every call
    fp8 = hasattr(torch, "float8_e4m3fn") and torch.cuda.get_device_capability(device) >= (8, 9)
    return frozenset({"fp4", "fp8"} if fp8 else {"fp4"})
