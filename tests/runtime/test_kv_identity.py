"""The model identity behind every snapshot key: file digests cached by path, size and mtime (in memory and
in a JSON file), and a different digest for anything that changes the KV."""

from __future__ import annotations

import json
import os
from pathlib import Path

from dsv4.runtime.kv import identity as ident


def test_file_digest_is_cached_and_follows_changes(tmp_path: Path):
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"\x01" * 1000)
    cache = tmp_path / "kv" / "digests.json"
    first = ident.file_digest(weights, cache)
    entries = json.loads(cache.read_text())
    assert list(entries.values()) == [first]
    # a cached entry is used as is (a second process reads the file, not the weights)
    ident._memo.clear()
    key = next(iter(entries))
    cache.write_text(json.dumps({key: "from-the-cache"}))
    assert ident.file_digest(weights, cache) == "from-the-cache"
    # new bytes and a new mtime: a new digest
    weights.write_bytes(b"\x02" * 1000)
    os.utime(weights, ns=(1, 1))
    second = ident.file_digest(weights, cache)
    assert second not in (first, "from-the-cache") and len(json.loads(cache.read_text())) == 2


def test_every_field_changes_the_digest(tmp_path: Path):
    (tmp_path / "model.gguf").write_bytes(b"weights")
    base = dict(architecture="llama", weights_digest=ident.weights_digest(tmp_path / "model.gguf"),
                tokenizer_digest="t", config={"rope_theta": 10000.0, "rope_scaling": {"kind": "yarn", "factor": 4.0}},
                precision="auto", weight_format="gguf", numerics="exact", kv_dtype="bfloat16", kv_quant="none")
    digest = ident.ModelIdentity(**base).digest()
    changes = {"architecture": "qwen2", "weights_digest": "w2", "tokenizer_digest": "t2",
               "config": {"rope_theta": 10000.0, "rope_scaling": {"kind": "yarn", "factor": 8.0}},
               "precision": "fp32", "weight_format": "safetensors", "numerics": "official", "kv_dtype": "float32",
               "kv_quant": "int8", "runtime_format": 99, "torch_version": "0.0"}
    digests = {ident.ModelIdentity(**{**base, k: v}).digest() for k, v in changes.items()}
    assert len(digests) == len(changes) and digest not in digests
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"a")
    before = ident.weights_digest(folder)
    (folder / "model.safetensors").write_bytes(b"bb")
    assert ident.weights_digest(folder) != before
