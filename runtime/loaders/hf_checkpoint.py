"""An HF checkpoint folder: config.json, tokenizer files, and safetensors shards streamed one tensor at a time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import torch

from ..config import ModelConfig, architecture_for_hf
from ..errors import BadModelFile
from ..tokenizer import Tokenizer


class HFCheckpoint:
    def __init__(self, folder: Path) -> None:
        self.path = folder
        config_path = folder / "config.json"
        if not config_path.is_file():
            raise BadModelFile(f"{folder}: no config.json, so this is not an HF checkpoint folder")
        raw = json.loads(config_path.read_text())
        self.arch = architecture_for_hf(str(raw.get("model_type", "")))
        self.config: ModelConfig = self.arch.from_hf(raw)
        self.shards = sorted(folder.glob("*.safetensors"))
        if not self.shards:
            raise BadModelFile(f"{folder}: no *.safetensors files (.bin checkpoints are not supported)")
        self.tokenizer = Tokenizer.from_hf_dir(folder)
        self._names = self._index()

    def _index(self) -> dict[str, Path]:
        from safetensors import safe_open

        names: dict[str, Path] = {}
        for shard in self.shards:
            with safe_open(shard, framework="pt") as f:
                names.update({name: shard for name in f.keys()})
        if "lm_head.weight" in names:
            self.config.tie_embeddings = False
        return names

    def tensor_names(self) -> list[str]:
        return list(self._names)

    def tensors(self, *, keep_q4: bool = False) -> Iterator[tuple[str, torch.Tensor]]:
        """(HF name, float32 tensor) pairs, shard by shard from memory maps: only one tensor is copied at a time."""
        from safetensors import safe_open

        for shard in self.shards:
            with safe_open(shard, framework="pt") as f:
                for name in f.keys():
                    yield name, f.get_tensor(name).float()

    def linear_bits(self) -> int:
        return 16

    def describe(self) -> dict[str, str]:
        return {"format": "safetensors", "shards": str(len(self.shards))}
