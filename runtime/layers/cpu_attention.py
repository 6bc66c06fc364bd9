"""The CPU decode-attention kernel (`decode_attention.c`): built once per machine with the system C compiler,
cached under `$DSV4_HOME/cache/kernels/`, called through ctypes.

Decode attention reads the whole bf16 cache once per step, and ATen's CPU flash kernel does that at about
half the memory bandwidth (evals/README.md, issue 19). The kernel exists only where it can be built and
run: a C compiler, a CPU with AVX-512 BF16, a bf16 cache, head_dim 64 or 128 and at most 8 query heads per
kv head. Anywhere else `cpu_decode_kernel()` is None and attention stays on ATen. `DSV4_CPU_ATTENTION=0`
turns it off (for comparisons).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("decode_attention.c")
COMPILE_FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC")


class DecodeAttentionKernel:
    def __init__(self, library: ctypes.CDLL) -> None:
        self._supports = library.dsv4_supports
        self._supports.argtypes, self._supports.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        self._attend = library.dsv4_decode_attention
        self._attend.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int] * 3 + [ctypes.c_int64] * 2 + [ctypes.c_float, ctypes.c_int]
        self._attend.restype = ctypes.c_int

    def supports(self, group: int, head_dim: int) -> bool:
        return bool(self._supports(group, head_dim))

    def __call__(self, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, length: int) -> torch.Tensor:
        """q: (H, D) bf16 contiguous, heads grouped by kv head; k_cache/v_cache: (Hkv, capacity, D) bf16 views with
        contiguous rows, positions [0, length) valid. Returns softmax(q k^T / sqrt(D)) v as (1, H*D) bf16."""
        hkv, _, head_dim = k_cache.shape
        heads = q.shape[0]
        assert q.dtype == k_cache.dtype == v_cache.dtype == torch.bfloat16 and q.is_contiguous()
        assert k_cache.stride()[1:] == (head_dim, 1) and v_cache.stride() == k_cache.stride()
        out = torch.empty(1, heads * head_dim, dtype=torch.bfloat16)
        status = self._attend(q.data_ptr(), k_cache.data_ptr(), v_cache.data_ptr(), out.data_ptr(), hkv, heads // hkv,
                              head_dim, k_cache.stride(0), length, head_dim**-0.5, torch.get_num_threads())
        if status != 0:
            raise RuntimeError(f"decode attention kernel refused its inputs (status {status})")
        return out


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")


def _build_key(compiler: str) -> str:
    """The built library depends on the source, the compiler and the CPU (-march=native)."""
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    cpu = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else platform.processor()
    flags = next((line for line in cpu.splitlines() if line.startswith("flags")), cpu[:2000])
    parts = [SOURCE.read_bytes(), version.encode(), flags.encode(), platform.machine().encode(), " ".join(COMPILE_FLAGS).encode()]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:24]


def build_library(cache_dir: Path) -> Path | None:
    """The built kernel (compiled now if this machine has not built it yet), or None where it cannot be built;
    a failed build is remembered (a `.failed` file with the compiler's output), so it is tried once per machine."""
    compiler = _compiler()
    if compiler is None:
        return None
    key = _build_key(compiler)
    library, failed = cache_dir / f"decode_attention-{key}.so", cache_dir / f"decode_attention-{key}.failed"
    if library.is_file():
        return library
    if failed.is_file():
        return None
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=".decode_attention-", suffix=".so")
    os.close(fd)
    tmp = Path(tmp_name)
    proc = subprocess.run([compiler, *COMPILE_FLAGS, "-o", str(tmp), str(SOURCE), "-lm"], capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        failed.write_text(proc.stderr[-4000:])
        return None
    os.replace(tmp, library)  # atomic: a concurrent process sees the whole library or none
    return library


@functools.cache
def cpu_decode_kernel() -> DecodeAttentionKernel | None:
    if os.environ.get("DSV4_CPU_ATTENTION", "1") == "0" or platform.system() != "Linux":
        return None
    from dsv4.home import dsv4_home  # the one home rule, importable from every layer

    library = build_library(dsv4_home() / "cache" / "kernels")
    return DecodeAttentionKernel(ctypes.CDLL(str(library))) if library is not None else None
