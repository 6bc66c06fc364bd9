"""Tier encodings of a snapshot's lossy tensors: int8 (warm) and int4 (cold) with per-block scales.

A tensor is split into blocks along its flattened last dimension (one block per attention head vector
for SmolLM2's 64-wide heads). int8 is symmetric (absmax / 127, fp16 scale); int4 is asymmetric (min and
step per block in fp16, two codes a byte), because K has a few large channels that a symmetric 4-bit
grid would spend most of its levels on. A tensor is stored as `tier_encoding` says: exact in the hot
tier and wherever it is not listed as lossy; else as the snapshot's `tier_encodings` names it for that tier
(V4's window rows: exact warm, int8 cold; its indexer keys int8 cold); else int8 warm, int4 cold. The
encoding of every stored tensor is in its `TensorInfo`, so decoding never depends on those lists.

Stored parts of a tensor `name`: exact -> `name`; int8 -> `name` (int8) + `name.scale`; int4 -> `name`
(uint8 codes) + `name.scale` + `name.min`. The cold tier is not zlib-compressed any more: int4 with its
scales is 0.28x of bf16 already, and inflating it was most of a cold restore's time (`compress=True` files
still decode). A bf16 destination is written by `dequant.c` in one pass (see `_direct_writer`).
"""

from __future__ import annotations

import math
import zlib

import torch

from .dequant import RowLayout, dequant_kernels
from .snapshot import KVMeta, KVSnapshot, LazyTensors, SnapshotRefused, TensorInfo, Tier, Writer

INT8_BLOCK = 64
INT4_BLOCK = 64
ENCODING_OF_TIER = {"hot": "exact", "warm": "int8", "cold": "int4"}
PARTS_OF_ENCODING = {"exact": ("",), "int8": ("", ".scale"), "int4": ("", ".scale", ".min")}


def block_size(t: torch.Tensor, preferred: int) -> int:
    last = t.shape[-1] if t.dim() else 1
    for b in (preferred, 32, 16, 8):
        if last % b == 0:
            return b
    return last


def quantise_int8(t: torch.Tensor, block: int) -> dict[str, torch.Tensor]:
    x = t.float().reshape(-1, block)
    scale = (x.abs().amax(dim=1, keepdim=True) / 127).clamp(min=1e-12).half()
    q = torch.round(x / scale.float()).clamp(-127, 127).to(torch.int8)
    return {"": q, ".scale": scale}


def dequantise_int8(parts: dict[str, torch.Tensor], info: TensorInfo) -> torch.Tensor:
    """code * scale in fp32, rounded once to the tensor's dtype: the reference `dequant.c` equals."""
    x = parts[""].float() * parts[".scale"].float()
    return x.reshape(info.shape).to(getattr(torch, info.dtype))


def quantise_int4(t: torch.Tensor, block: int, *, compress: bool) -> dict[str, torch.Tensor]:
    x = t.float().reshape(-1, block)
    lo, hi = x.amin(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)
    step = ((hi - lo) / 15).clamp(min=1e-12).half()
    lo = lo.half()
    q = torch.round((x - lo.float()) / step.float()).clamp(0, 15).to(torch.uint8)
    packed = (q[:, 0::2] | (q[:, 1::2] << 4)).reshape(-1)
    if compress:
        packed = torch.frombuffer(bytearray(zlib.compress(packed.numpy().tobytes(), 1)), dtype=torch.uint8)
    return {"": packed, ".scale": step, ".min": lo}


def dequantise_int4(parts: dict[str, torch.Tensor], info: TensorInfo) -> torch.Tensor:
    """min + code * step in fp32 (two roundings, no fused multiply-add), rounded once to the tensor's dtype:
    the reference `dequant.c` equals."""
    packed = parts[""]
    if info.compressed:  # files written before the cold tier dropped zlib
        packed = torch.frombuffer(bytearray(zlib.decompress(packed.numpy().tobytes())), dtype=torch.uint8)
    packed = packed.reshape(-1, info.block // 2)
    q = torch.empty(packed.shape[0], info.block, dtype=torch.uint8)
    torch.bitwise_and(packed, 15, out=q[:, 0::2])
    torch.bitwise_right_shift(packed, 4, out=q[:, 1::2])
    x = (q.float() * parts[".scale"].float()).add_(parts[".min"].float())
    return x.reshape(info.shape).to(getattr(torch, info.dtype))


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def encode_tensor(t: torch.Tensor, encoding: str, *, compress: bool) -> tuple[TensorInfo, dict[str, torch.Tensor]]:
    info = TensorInfo(encoding=encoding, dtype=dtype_name(t.dtype), shape=list(t.shape))
    if encoding == "exact" or t.numel() == 0:
        info.encoding = "exact"
        return info, {"": t}
    if encoding == "int8":
        info.block = block_size(t, INT8_BLOCK)
        return info, quantise_int8(t, info.block)
    info.block = block_size(t, INT4_BLOCK)
    if info.block % 2:
        info.encoding = "int8"  # an odd block cannot pack two codes a byte
        info.block = block_size(t, INT8_BLOCK)
        return info, quantise_int8(t, info.block)
    info.compressed = compress
    return info, quantise_int4(t, info.block, compress=compress)


def tier_encoding(meta: KVMeta, name: str, tier: Tier) -> str:
    """How `tier` stores tensor `name` of a snapshot with metadata `meta`."""
    if tier == "hot" or name not in meta.lossy:
        return "exact"
    return meta.tier_encodings.get(name, {}).get(tier, ENCODING_OF_TIER[tier])


def decode_tensor(info: TensorInfo, parts: dict[str, torch.Tensor]) -> torch.Tensor:
    if info.encoding == "exact":
        return parts[""]
    if info.encoding == "int8":
        return dequantise_int8(parts, info)
    return dequantise_int4(parts, info)


class EncodedSnapshot:
    """A snapshot in a tier's storage form: what the warm RAM tier holds and what a file contains."""

    def __init__(self, snap: KVSnapshot, tier: Tier, *, compress: bool = False) -> None:
        self.meta = snap.meta.model_copy(deep=True)
        self.meta.tier = tier
        self.meta.tensors = {}
        self.parts: dict[str, torch.Tensor] = {}  # stored name -> tensor
        for name, t in snap.tensors.items():
            info, parts = encode_tensor(t, tier_encoding(snap.meta, name, tier), compress=compress)
            self.meta.tensors[name] = info
            for suffix, part in parts.items():
                self.parts[name + suffix] = part

    @classmethod
    def from_parts(cls, meta, parts: dict[str, torch.Tensor]) -> EncodedSnapshot:
        out = cls.__new__(cls)
        out.meta, out.parts = meta, parts
        return out

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.parts.values())

    def decode(self) -> KVSnapshot:
        """The snapshot, its tensors decoded on first use. Every part is checked here (present, the right
        number of elements), so a structurally broken snapshot is refused before any import starts."""
        for name, info in self.meta.tensors.items():
            missing = [name + suffix for suffix in PARTS_OF_ENCODING[info.encoding] if name + suffix not in self.parts]
            if missing:
                raise SnapshotRefused(f"snapshot tensor {name!r} lacks {', '.join(missing)}")
            if not parts_fit(info, self._parts(name)):
                raise SnapshotRefused(f"snapshot tensor {name!r} does not hold {info.encoding} {info.shape} "
                                      f"(blocks of {info.block})")
        # not a deep copy: that walks every token id one by one (20 ms at 8k); the infos are never changed
        meta = self.meta.model_copy(update={"tokens": list(self.meta.tokens), "tensors": dict(self.meta.tensors),
                                            "layout": dict(self.meta.layout), "lossy": list(self.meta.lossy),
                                            "tier_encodings": dict(self.meta.tier_encodings)})
        return KVSnapshot(meta=meta, tensors=LazyTensors(dict(meta.tensors), self._decode_one, self._direct_writer))

    def _parts(self, name: str) -> dict[str, torch.Tensor]:
        return {suffix: self.parts[name + suffix] for suffix in ("", ".scale", ".min") if name + suffix in self.parts}

    def _decode_one(self, name: str) -> torch.Tensor:
        info = self.meta.tensors[name]
        try:
            t = decode_tensor(info, self._parts(name))
        except (RuntimeError, zlib.error, ValueError, ZeroDivisionError) as exc:
            raise SnapshotRefused(f"snapshot tensor {name!r} cannot be decoded ({exc})") from None
        if list(t.shape) != info.shape:
            raise SnapshotRefused(f"snapshot tensor {name!r} has shape {list(t.shape)}, not {info.shape}")
        return t

    def _direct_writer(self, name: str) -> Writer | None:
        """int8 / int4 blocks of a bf16 tensor dequantised straight into the destination by `dequant.c` (one
        pass, no decoded copy; the values equal `decode_tensor`'s). None where the kernel is absent, the
        tensor is another dtype or compressed, or the index is not a prefix of positions."""
        info = self.meta.tensors[name]
        if info.encoding == "exact" or info.dtype != "bfloat16" or len(info.shape) < 2 or info.compressed:
            return None
        kernels = dequant_kernels()
        if kernels is None:
            return None
        parts = self._parts(name)
        positions, width = info.shape[-2], info.shape[-1]
        src_row_blocks = positions * width // info.block

        def write(out: torch.Tensor, index: tuple) -> None:
            layout = RowLayout.of(out) if prefix_of_positions(index, len(info.shape)) else None
            if layout is None or list(out.shape[:-2]) != info.shape[:-2] or out.shape[-1] != width:
                out.copy_(self._decode_one(name)[index])  # not a layout the kernel writes: decode, then copy
            elif info.encoding == "int8":
                kernels.int8_into(out, layout, parts[""], parts[".scale"], info.block, src_row_blocks)
            else:
                kernels.int4_into(out, layout, parts[""], parts[".scale"], parts[".min"], info.block, src_row_blocks)

        return write


def prefix_of_positions(index: tuple, ndim: int) -> bool:
    """Whether `index` selects every leading dim and a prefix [0, n) of the positions dim (the second to last)."""
    if len(index) != ndim - 1 or any(i != slice(None) for i in index[:-1]):
        return False
    last = index[-1]
    return isinstance(last, slice) and last.start in (None, 0) and last.step in (None, 1)


def parts_fit(info: TensorInfo, parts: dict[str, torch.Tensor]) -> bool:
    """Whether the stored parts can hold the tensor the header describes (checked before anything is decoded)."""
    n = math.prod(info.shape)
    if info.encoding == "exact":
        return list(parts[""].shape) == info.shape and dtype_name(parts[""].dtype) == info.dtype
    if info.block <= 0 or not info.shape or info.shape[-1] % info.block:
        return False
    blocks = n // info.block
    if info.encoding == "int8":
        return parts[""].dtype == torch.int8 and parts[""].numel() == n and parts[".scale"].numel() == blocks
    return (info.block % 2 == 0 and parts[".scale"].numel() == blocks and parts[".min"].numel() == blocks
            and parts[""].dtype == torch.uint8 and (info.compressed or parts[""].numel() == n // 2))
