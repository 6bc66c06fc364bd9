"""The CPU decode kernels (`cpu_decode.c`) and prefill kernels (`cpu_prefill.c`: causal chunk attention, a
chunk's rotary and cache writes), one library built once per machine with the system C compiler, cached under
`$DSV4_HOME/cache/kernels/`, called through ctypes.

A bf16 decode step is one token: its attention reads the whole cache once, which ATen's CPU flash kernel
does at about a fifth of this kernel's speed (evals/README.md, issue 19), and its small per-layer ops (norm,
rotary, cache writes) cost ~10 ATen dispatches each where one C call does. The kernels exist only where they
can be built and run: a C compiler, a CPU with AVX-512 BF16, bf16 activations and cache, head_dim 64 or 128
and at most 8 query heads per kv head. Anywhere else `cpu_decode_kernel()` is None and decode stays on
ATen. `DSV4_CPU_ATTENTION=0` turns them off (for comparisons).

The decode and prefill attention also read the llama live warm tier's int8 rows (one fp16 scale a row) beside
the hot bf16 rows in the same pass (`attend_warm` as stored, `prefill_attend_warm` through its repack scratch);
without them a chunk with warm rows runs the torch split attention (runtime/layers/split_attention.py).
`DSV4_CPU_WARM_ATTENTION=0` turns off only that (for comparisons).
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

SOURCES = (Path(__file__).with_name("cpu_decode.c"), Path(__file__).with_name("cpu_prefill.c"))
HEADERS = (Path(__file__).with_name("cpu_simd.h"),)
COMPILE_FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC")
WarmInt8 = tuple[torch.Tensor, torch.Tensor]  # one layer's warm K or V as stored: codes (Hkv, capacity, D) int8, scales (Hkv, capacity, 1) fp16


class CpuDecodeKernels:
    def __init__(self, library: ctypes.CDLL) -> None:
        self._supports = library.dsv4_supports
        self._supports.argtypes, self._supports.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        self._attend = library.dsv4_decode_attention
        self._attend.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int] * 3 + [ctypes.c_int64] * 2 + [ctypes.c_float, ctypes.c_int]
        self._attend.restype = ctypes.c_int
        self._attend_tiered = library.dsv4_decode_attention_tiered
        self._attend_tiered.argtypes = ([ctypes.c_void_p] * 5 + [ctypes.c_int64] * 2 + [ctypes.c_void_p] * 3 + [ctypes.c_int] * 3
                                        + [ctypes.c_int64] * 2 + [ctypes.c_float, ctypes.c_int])
        self._attend_tiered.restype = ctypes.c_int
        self.reads_warm_rows = os.environ.get("DSV4_CPU_WARM_ATTENTION", "1") != "0"
        self._norm = library.dsv4_add_rms_norm
        self._norm.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64] * 2 + [ctypes.c_float]
        self._norm.restype = None
        self._rope = library.dsv4_rope_store
        self._rope.argtypes = [ctypes.c_void_p] * 5 + [ctypes.c_int] * 3 + [ctypes.c_int64, ctypes.c_int]
        self._rope.restype = ctypes.c_int
        self._silu_mul = library.dsv4_silu_mul
        self._silu_mul.argtypes = [ctypes.c_void_p] * 2 + [ctypes.c_int64] * 2
        self._silu_mul.restype = None
        self._prefill_supports = library.dsv4_prefill_supports
        self._prefill_supports.argtypes, self._prefill_supports.restype = [ctypes.c_int], ctypes.c_int
        self._prefill = library.dsv4_prefill_attention
        self._prefill.argtypes = ([ctypes.c_void_p, ctypes.c_int64] + [ctypes.c_void_p] * 2 + [ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64]
                                  + [ctypes.c_int] * 3 + [ctypes.c_int64, ctypes.c_float, ctypes.c_int])
        self._prefill.restype = ctypes.c_int
        self._prefill_tiered = library.dsv4_prefill_attention_tiered
        self._prefill_tiered.argtypes = ([ctypes.c_void_p, ctypes.c_int64] + [ctypes.c_void_p] * 4 + [ctypes.c_int64] * 2 + [ctypes.c_void_p] * 2
                                         + [ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64] + [ctypes.c_int] * 3
                                         + [ctypes.c_int64, ctypes.c_float, ctypes.c_int])
        self._prefill_tiered.restype = ctypes.c_int
        self._rope_rows = library.dsv4_rope_store_rows
        self._rope_rows.argtypes = [ctypes.c_void_p] * 5 + [ctypes.c_int] * 3 + [ctypes.c_int64, ctypes.c_int, ctypes.c_int64, ctypes.c_int]
        self._rope_rows.restype = ctypes.c_int

    def supports(self, group: int, head_dim: int) -> bool:
        return bool(self._supports(group, head_dim))

    def attend(self, q: torch.Tensor, heads: int, k_cache: torch.Tensor, v_cache: torch.Tensor, length: int) -> torch.Tensor:
        """q: bf16, contiguous, whose first heads*D elements are the (H, D) queries (heads grouped by kv head);
        k_cache/v_cache: (Hkv, capacity, D) bf16 views with contiguous rows, positions [0, length) valid.
        Returns softmax(q k^T / sqrt(D)) v as (1, H*D) bf16."""
        hkv, capacity, head_dim = k_cache.shape
        assert q.dtype == k_cache.dtype == v_cache.dtype == torch.bfloat16 and q.is_contiguous() and q.numel() >= heads * head_dim
        assert 1 <= length <= capacity
        assert k_cache.stride()[1:] == (head_dim, 1) and v_cache.stride() == k_cache.stride()
        out = torch.empty(1, heads * head_dim, dtype=torch.bfloat16)
        status = self._attend(q.data_ptr(), k_cache.data_ptr(), v_cache.data_ptr(), out.data_ptr(), hkv, heads // hkv,
                              head_dim, k_cache.stride(0), length, head_dim**-0.5, torch.get_num_threads())
        if status != 0:
            raise RuntimeError(f"decode attention kernel refused its inputs (status {status})")
        return out

    def attend_warm(self, q: torch.Tensor, heads: int, warm_k: WarmInt8, warm_v: WarmInt8, n_warm: int, k_cache: torch.Tensor,
                    v_cache: torch.Tensor, length: int) -> torch.Tensor:
        """`attend` over positions [0, n_warm + length): the first n_warm int8 rows of the warm tier, then the hot
        cache's slots [0, length). Returns (1, H*D) bf16."""
        hkv, capacity, head_dim = k_cache.shape
        assert q.dtype == k_cache.dtype == v_cache.dtype == torch.bfloat16 and q.is_contiguous() and q.numel() >= heads * head_dim
        assert 1 <= length <= capacity
        assert k_cache.stride()[1:] == (head_dim, 1) and v_cache.stride() == k_cache.stride()
        out = torch.empty(1, heads * head_dim, dtype=torch.bfloat16)
        status = self._attend_tiered(q.data_ptr(), *_warm_arguments(warm_k, warm_v, n_warm, k_cache), k_cache.data_ptr(), v_cache.data_ptr(),
                                     out.data_ptr(), hkv, heads // hkv, head_dim, k_cache.stride(0), length, head_dim**-0.5, torch.get_num_threads())
        if status != 0:
            raise RuntimeError(f"decode attention kernel refused its inputs (status {status})")
        return out

    def prefill_supports(self, head_dim: int) -> bool:
        return bool(self._prefill_supports(head_dim))

    def prefill_attend(self, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, start: int) -> torch.Tensor:
        """Causal attention of a chunk: q (T, H, D) bf16 with contiguous heads (any token stride; heads grouped by
        kv head), the chunk's keys already in the cache at [start, start + T). Token t sees positions [0, start + t].
        Returns (T, H*D) bf16 (cpu_prefill.c)."""
        T, heads, head_dim = q.shape
        hkv, capacity, _ = k_cache.shape
        assert q.dtype == k_cache.dtype == v_cache.dtype == torch.bfloat16 and q.stride()[1:] == (head_dim, 1)
        assert heads % hkv == 0 and 0 <= start and start + T <= capacity
        assert k_cache.stride()[1:] == (head_dim, 1) and v_cache.stride() == k_cache.stride()
        out = torch.empty(T, heads * head_dim, dtype=torch.bfloat16)
        status = self._prefill(q.data_ptr(), q.stride(0), k_cache.data_ptr(), v_cache.data_ptr(), k_cache.stride(0), out.data_ptr(),
                               T, hkv, heads // hkv, head_dim, start, head_dim**-0.5, torch.get_num_threads())
        if status != 0:
            raise RuntimeError(f"prefill attention kernel refused its inputs (status {status})")
        return out

    def prefill_attend_warm(self, q: torch.Tensor, warm_k: WarmInt8, warm_v: WarmInt8, n_warm: int, k_cache: torch.Tensor,
                            v_cache: torch.Tensor, start: int) -> torch.Tensor:
        """`prefill_attend` with positions [0, n_warm) the warm tier's int8 rows and the hot cache's slot 0 position
        n_warm: the chunk's keys already at slots [start - n_warm, start - n_warm + T). Returns (T, H*D) bf16."""
        T, heads, head_dim = q.shape
        hkv, capacity, _ = k_cache.shape
        assert q.dtype == k_cache.dtype == v_cache.dtype == torch.bfloat16 and q.stride()[1:] == (head_dim, 1)
        assert heads % hkv == 0 and n_warm <= start and start - n_warm + T <= capacity
        assert k_cache.stride()[1:] == (head_dim, 1) and v_cache.stride() == k_cache.stride()
        out = torch.empty(T, heads * head_dim, dtype=torch.bfloat16)
        status = self._prefill_tiered(q.data_ptr(), q.stride(0), *_warm_arguments(warm_k, warm_v, n_warm, k_cache), k_cache.data_ptr(),
                                      v_cache.data_ptr(), k_cache.stride(0), out.data_ptr(), T, hkv, heads // hkv, head_dim, start,
                                      head_dim**-0.5, torch.get_num_threads())
        if status != 0:
            raise RuntimeError(f"prefill attention kernel refused its inputs (status {status})")
        return out

    def add_rms_norm(self, x: torch.Tensor, residual: torch.Tensor | None, weight: torch.Tensor, eps: float) -> torch.Tensor:
        """x, residual: (T, dim) bf16 contiguous. x becomes x + residual IN PLACE (the caller's new residual);
        returns rms_norm(x) * weight."""
        rows, dim = x.shape
        assert x.dtype == weight.dtype == torch.bfloat16 and x.is_contiguous() and weight.shape == (dim,)
        if residual is not None:
            assert residual.dtype == torch.bfloat16 and residual.is_contiguous() and residual.shape == x.shape
        out = torch.empty_like(x)
        self._norm(x.data_ptr(), None if residual is None else residual.data_ptr(), weight.data_ptr(), out.data_ptr(), rows, dim, eps)
        return out

    def silu_mul(self, gate_up: torch.Tensor) -> torch.Tensor:
        """(T, 2I) bf16 contiguous [gate | up] -> silu(gate) * up (T, I)."""
        rows, width = gate_up.shape
        assert gate_up.dtype == torch.bfloat16 and gate_up.is_contiguous() and width % 2 == 0
        out = torch.empty(rows, width // 2, dtype=torch.bfloat16)
        self._silu_mul(gate_up.data_ptr(), out.data_ptr(), rows, width // 2)
        return out

    def rope_store(self, qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, position: int, k_cache: torch.Tensor,
                   v_cache: torch.Tensor, heads: int, interleaved: bool, slot: int | None = None) -> None:
        """T tokens' qkv (T, (H + 2 Hkv) * D) bf16 at positions position.. (one token in decode): q rotated in place,
        k rotated into the cache, v copied there, at cache rows slot.. (default: the position; with warm rows the hot
        block starts past them). cos/sin: the rotary tables (positions, D), sign folded into sin (RotaryEmbedding)."""
        hkv, capacity, head_dim = k_cache.shape
        tokens, slot = qkv.shape[0], position if slot is None else slot
        assert qkv.is_contiguous() and qkv.numel() == tokens * (heads + 2 * hkv) * head_dim and qkv.dtype == torch.bfloat16
        assert cos.dtype == sin.dtype == torch.bfloat16 and cos.is_contiguous() and sin.is_contiguous()
        assert 0 <= slot and slot + tokens <= capacity and 0 <= position and position + tokens <= cos.shape[0] and cos.shape[1] == head_dim
        assert k_cache.stride()[1:] == (head_dim, 1) and v_cache.stride() == k_cache.stride()
        row, size = position * head_dim * 2, 2  # byte offset of the position's table row; bytes per cache element
        pointers = (qkv.data_ptr(), cos.data_ptr() + row, sin.data_ptr() + row, k_cache.data_ptr() + slot * k_cache.stride(1) * size,
                    v_cache.data_ptr() + slot * v_cache.stride(1) * size, heads, hkv, head_dim, k_cache.stride(0), int(interleaved))
        status = self._rope(*pointers) if tokens == 1 else self._rope_rows(*pointers, tokens, torch.get_num_threads())
        if status != 0:
            raise RuntimeError(f"rotary kernel refused its inputs (status {status})")


def _warm_arguments(warm_k: WarmInt8, warm_v: WarmInt8, n_warm: int, k_cache: torch.Tensor) -> tuple[int, ...]:
    """The kernels' warm-tier arguments: codes and scales pointers of K then V, the tier's capacity, n_warm."""
    hkv, _, head_dim = k_cache.shape
    (k_codes, k_scales), (v_codes, v_scales) = warm_k, warm_v
    capacity = k_codes.shape[1]
    assert 0 <= n_warm <= capacity
    for codes, scales in warm_k, warm_v:
        assert codes.dtype == torch.int8 and codes.shape == (hkv, capacity, head_dim) and codes.is_contiguous()
        assert scales.dtype == torch.float16 and scales.shape == (hkv, capacity, 1) and scales.is_contiguous()
    return k_codes.data_ptr(), k_scales.data_ptr(), v_codes.data_ptr(), v_scales.data_ptr(), capacity, n_warm


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")


def _build_key(compiler: str, files: tuple[Path, ...]) -> str:
    """The built library depends on the source, the compiler and the CPU (-march=native)."""
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    cpu = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else platform.processor()
    flags = next((line for line in cpu.splitlines() if line.startswith("flags")), cpu[:2000])
    parts = [*(file.read_bytes() for file in files), version.encode(), flags.encode(), platform.machine().encode(), " ".join(COMPILE_FLAGS).encode()]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:24]


def build_library(cache_dir: Path, sources: tuple[Path, ...] = SOURCES, headers: tuple[Path, ...] = HEADERS) -> Path | None:
    """The built kernel (compiled now if this machine has not built it yet), or None where it cannot be built;
    a failed build is remembered (a `.failed` file with the compiler's output), so it is tried once per machine."""
    compiler = _compiler()
    if compiler is None:
        return None
    # `sources`: the C files of one library (another package's kernels are built the same way), named after the first
    key, name = _build_key(compiler, (*sources, *headers)), sources[0].stem
    library, failed = cache_dir / f"{name}-{key}.so", cache_dir / f"{name}-{key}.failed"
    if library.is_file():
        return library
    if failed.is_file():
        return None
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=f".{name}-", suffix=".so")
    os.close(fd)
    tmp = Path(tmp_name)
    proc = subprocess.run([compiler, *COMPILE_FLAGS, "-o", str(tmp), *map(str, sources), "-lm"], capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        failed.write_text(proc.stderr[-4000:])
        return None
    os.replace(tmp, library)  # atomic: a concurrent process sees the whole library or none
    return library


@functools.cache
def cpu_decode_kernels() -> CpuDecodeKernels | None:
    if os.environ.get("DSV4_CPU_ATTENTION", "1") == "0" or platform.system() != "Linux":
        return None
    from dsv4.home import dsv4_home  # the one home rule, importable from every layer

    library = build_library(dsv4_home() / "cache" / "kernels")
    return CpuDecodeKernels(ctypes.CDLL(str(library))) if library is not None else None
