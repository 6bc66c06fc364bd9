"""A GGUF file as a checkpoint: config, tokenizer, and tensors renamed to HF names, dequantised one at a time."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import torch

from ..config import ModelConfig, architecture_for_gguf
from ..errors import BadModelFile
from ..tokenizer import Tokenizer
from ..quant import Q4Groups
from .dequant import Q4_GROUP_TYPES, dequantize, q4_groups
from .gguf_file import GGUFFile

_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
    "rope_freqs.weight": "rope_freqs",
}
_BLOCK_NAMES = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_BLOCK_RE = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)")


class GGUFCheckpoint:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = GGUFFile(path)
        meta = self.file.metadata
        self.arch = architecture_for_gguf(self.file.architecture)
        self.config: ModelConfig = self.arch.from_gguf(meta)
        self.config.tie_embeddings = "output.weight" not in self.file.tensors
        self.tokenizer = Tokenizer.from_gguf_metadata(meta, str(path))
        self._check_tensors()

    def _check_tensors(self) -> None:
        missing = [n for n in ("token_embd.weight", "output_norm.weight", "blk.0.attn_q.weight") if n not in self.file.tensors]
        if missing:
            raise BadModelFile(f"{self.path}: GGUF lacks tensors {missing} for architecture {self.file.architecture!r}")

    def tensor_names(self) -> list[str]:
        return [hf_name(n) for n in self.file.tensors]

    def tensors(self, *, keep_q4: bool = False) -> Iterator[tuple[str, torch.Tensor | Q4Groups]]:
        """(HF name, float32 tensor) pairs; GGUF q/k rows stay in llama.cpp's rotary order (see config).

        keep_q4: Q4_0/Q4_1 matrices come as their integers and scales (for int4 layers) instead."""
        for name, info in self.file.tensors.items():
            if keep_q4 and info.ggml_type in Q4_GROUP_TYPES and len(info.shape) == 2:
                yield hf_name(name), q4_groups(self.file.raw(name), info.ggml_type, info.shape)
            else:
                yield hf_name(name), dequantize(self.file.raw(name), info.ggml_type, info.shape)

    def linear_bits(self) -> int:
        """4 when every projection is stored as 4-bit groups of 32 (Q4_0, Q4_1, Q4_K sub-blocks), else 8."""
        from gguf.constants import GGMLQuantizationType as Q

        four_bit = {Q.Q4_0, Q.Q4_1, Q.Q4_K}
        projections = [i for n, i in self.file.tensors.items() if n.startswith("blk.") and n.endswith(".weight") and len(i.shape) == 2]
        return 4 if projections and all(Q(i.ggml_type) in four_bit for i in projections) else 8

    def describe(self) -> dict[str, str]:
        types: dict[str, int] = {}
        from gguf.constants import GGMLQuantizationType

        for info in self.file.tensors.values():
            key = GGMLQuantizationType(info.ggml_type).name
            types[key] = types.get(key, 0) + 1
        return {"format": "gguf", "tensor_types": ", ".join(f"{k}x{v}" for k, v in sorted(types.items()))}


def hf_name(gguf_name: str) -> str:
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    m = _BLOCK_RE.fullmatch(gguf_name)
    if m is None or m.group(2) not in _BLOCK_NAMES:
        return gguf_name  # unknown extras are passed through; the model decides whether it needs them
    return f"model.layers.{m.group(1)}.{_BLOCK_NAMES[m.group(2)]}.{m.group(3)}"
