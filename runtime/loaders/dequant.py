"""GGUF block formats to float32 tensors.

The common formats (F32/F16/BF16, Q4_0, Q4_1, Q8_0) are decoded here with torch, multi-threaded and
about 10x faster than numpy; every other format goes through `gguf.quants.dequantize`, the reference
implementation from llama.cpp's own Python package (K-quants such as Q4_K and Q6_K included).
"""

from __future__ import annotations

import numpy as np
import torch
from gguf.constants import GGMLQuantizationType as Q

from ..errors import BadModelFile
from ..quant import Q4Groups

Q4_GROUP_TYPES = (Q.Q4_0, Q.Q4_1)


def q4_groups(raw: np.ndarray, ggml_type: int, shape: tuple[int, ...]) -> Q4Groups:
    qtype = Q(ggml_type)
    N, K = shape
    blocks = torch.from_numpy(raw).view(-1, _BLOCK_BYTES[qtype])  # (N*K/32, bytes)
    d = _scale(blocks, 0).view(N, K // 32)
    if qtype == Q.Q4_0:
        q, low = _nibbles_int(blocks[:, 2:18]), -8.0 * d
    else:
        q, low = _nibbles_int(blocks[:, 4:20]), _scale(blocks, 2).view(N, K // 32)
    return Q4Groups(q.view(N, K), d, low)


def dequantize(raw: np.ndarray, ggml_type: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Decode the bytes of one tensor to float32 with the given (numpy-order) shape."""
    qtype = Q(ggml_type)
    if qtype == Q.F32:
        return torch.from_numpy(raw.view(np.float32).copy()).view(shape)
    if qtype == Q.F16:
        return torch.from_numpy(raw.view(np.float16)).float().view(shape)
    if qtype == Q.BF16:
        return torch.from_numpy(raw.view(np.int16)).view(torch.bfloat16).float().view(shape)
    if qtype in _TORCH_DECODERS:
        blocks = torch.from_numpy(raw).view(-1, _BLOCK_BYTES[qtype])  # (n_blocks, bytes)
        out = torch.empty(blocks.shape[0], 32)  # (n_blocks, 32)
        # in slices, so decoding a 50k-row embedding needs no full-size temporaries besides the output
        for start in range(0, blocks.shape[0], _SLICE_BLOCKS):
            out[start : start + _SLICE_BLOCKS] = _TORCH_DECODERS[qtype](blocks[start : start + _SLICE_BLOCKS])
        return out.view(shape)
    from gguf.quants import dequantize as gguf_dequantize

    try:
        rows = raw.reshape(-1, raw.size // max(1, int(np.prod(shape[:-1]))))
        out = gguf_dequantize(rows, qtype)
    except NotImplementedError:
        raise BadModelFile(f"GGUF tensor type {qtype.name} cannot be dequantized (not supported by the gguf package)") from None
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)).view(shape)


def _scale(blocks: torch.Tensor, start: int) -> torch.Tensor:
    return blocks[:, start : start + 2].contiguous().view(torch.float16).float()  # (n, 1)


def _nibbles(qs: torch.Tensor) -> torch.Tensor:
    # low nibbles hold elements 0..15 of a block, high nibbles 16..31
    return torch.cat([qs & 0x0F, qs >> 4], dim=1).float()  # (n, 32)


def _nibbles_int(qs: torch.Tensor) -> torch.Tensor:
    return torch.cat([qs & 0x0F, qs >> 4], dim=1).to(torch.int32)  # (n, 32)


def _q4_0(blocks: torch.Tensor) -> torch.Tensor:
    return (_nibbles(blocks[:, 2:18]) - 8.0) * _scale(blocks, 0)


def _q4_1(blocks: torch.Tensor) -> torch.Tensor:
    return _nibbles(blocks[:, 4:20]) * _scale(blocks, 0) + _scale(blocks, 2)


def _q8_0(blocks: torch.Tensor) -> torch.Tensor:
    return blocks[:, 2:34].contiguous().view(torch.int8).float() * _scale(blocks, 0)


_TORCH_DECODERS = {Q.Q4_0: _q4_0, Q.Q4_1: _q4_1, Q.Q8_0: _q8_0}
_BLOCK_BYTES = {Q.Q4_0: 18, Q.Q4_1: 20, Q.Q8_0: 34}
_SLICE_BLOCKS = 1 << 16
