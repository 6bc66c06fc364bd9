"""The model identity a snapshot is keyed by: everything that changes the KV a prompt produces.

Weights (a digest of the checkpoint files), tokenizer, config (RoPE and YaRN included), precision and
weight format, numerics (V4), KV dtype and quantisation, this runtime's snapshot format and the torch
version. Its digest seeds the prefix hash chain, so any difference is a miss, never a partial hit.

Hashing a checkpoint reads every byte once; the digest is cached by (path, size, mtime) in memory and,
when the caller gives one, in a JSON file (`$DSV4_HOME/kv/digests.json` for the agent).
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel

from .snapshot import FORMAT_VERSION

CHUNK = 8 << 20
WEIGHT_SUFFIXES = (".gguf", ".safetensors", ".bin", ".json", ".model", ".txt")
_memo: dict[tuple[str, int, int], str] = {}
_memo_lock = threading.Lock()


class ModelIdentity(BaseModel):
    architecture: str
    weights_digest: str
    tokenizer_digest: str
    config: dict[str, Any]
    precision: str
    weight_format: str
    numerics: str = "exact"
    kv_dtype: str
    kv_quant: str = "none"
    runtime_format: int = FORMAT_VERSION
    torch_version: str = torch.__version__

    def digest(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


def checkpoint_files(path: Path) -> list[Path]:
    """The files whose bytes are the model: the GGUF file, or a checkpoint folder's weights and configs."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)


def file_digest(path: Path, cache_file: Path | None = None) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _memo_lock:
        if key in _memo:
            return _memo[key]
    cached = _read_cache(cache_file).get("|".join(map(str, key))) if cache_file else None
    if cached is None:
        h = hashlib.blake2b(digest_size=32)
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                h.update(chunk)
        cached = h.hexdigest()
        if cache_file:
            _write_cache(cache_file, "|".join(map(str, key)), cached)
    with _memo_lock:
        _memo[key] = cached
    return cached


def weights_digest(path: Path, cache_file: Path | None = None) -> str:
    h = hashlib.sha256()
    root = path if path.is_dir() else path.parent
    for f in checkpoint_files(path):
        h.update(f"{f.relative_to(root)}\0{file_digest(f, cache_file)}\n".encode())
    return h.hexdigest()


def tokenizer_digest(tokenizer: Any) -> str:
    """The vocabulary, merges, normaliser and pre-tokeniser, plus the special-token rules the engine applies."""
    parts = [tokenizer.backend.to_str(), str(tokenizer.bos_token), str(tokenizer.eos_token), str(tokenizer.add_bos),
             str(sorted(tokenizer.stop_token_ids))]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def config_dict(config: Any) -> dict[str, Any]:
    raw = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(vars(config))
    return json.loads(json.dumps(raw, default=str, sort_keys=True))


def _read_cache(cache_file: Path) -> dict[str, str]:
    try:
        data = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(cache_file: Path, key: str, digest: str) -> None:
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    with open(cache_file.with_name(cache_file.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two processes hashing at once keep both entries
        data = _read_cache(cache_file)
        data[key] = digest
        tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, cache_file)
