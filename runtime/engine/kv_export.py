"""Export and import of a prefix's K/V for `LlamaEngine`: the first n positions of every layer's K and V.

A llama cache can be cut anywhere (position p's K/V depends only on tokens up to p), so a snapshot of
n tokens restores any m <= n of them. Import checks the model identity and every shape and dtype before
it writes one byte into the cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..kv.codec import dtype_name
from ..kv.identity import ModelIdentity, config_dict, tokenizer_digest, weights_digest
from ..kv.snapshot import KVMeta, KVSnapshot, SnapshotRefused

if TYPE_CHECKING:
    from .engine import LlamaEngine


def llama_identity(engine: LlamaEngine, digest_cache: Path | None) -> ModelIdentity:
    return ModelIdentity(
        architecture=engine.config.architecture,
        weights_digest=weights_digest(engine.loaded.path, digest_cache),
        tokenizer_digest=tokenizer_digest(engine.tokenizer),
        config=config_dict(engine.config),
        precision=engine.loaded.precision,
        weight_format=str(engine.loaded.checkpoint_info),
        kv_dtype=dtype_name(engine.kv.block.dtype),
    )


def export_llama(engine: LlamaEngine, n: int) -> KVSnapshot:
    held = len(engine.kv.tokens)
    if not 0 < n <= held:
        raise ValueError(f"cannot export {n} tokens: the cache holds {held}")
    block = engine.kv.block
    meta = KVMeta(architecture="llama", identity=engine.identity_digest(), dtype=dtype_name(block.dtype), length=n,
                  tokens=list(engine.kv.tokens[:n]), layout={"layers": block.shape[0], "kv_heads": block.shape[2],
                                                               "head_dim": block.shape[4]}, lossy=["kv"])
    return KVSnapshot(meta=meta, tensors={"kv": engine.kv.prefix(n)})  # (L, 2, Hkv, n, D), warm rows dequantised


def import_llama(engine: LlamaEngine, snap: KVSnapshot, limit: int | None) -> int:
    """Make the cache hold the first min(limit, snapshot length) tokens of `snap`; returns that count."""
    snap.check_identity(engine.identity_digest(), "llama")
    n = snap.length if limit is None else min(limit, snap.length)
    if n <= 0:
        raise SnapshotRefused(f"nothing to import ({n} tokens)")
    if n >= engine.context_window:
        raise SnapshotRefused(f"snapshot of {n} tokens does not fit the context window of {engine.context_window}")
    described = snap.describe("kv")
    block = engine.kv.block
    want = [block.shape[0], 2, block.shape[2], snap.length, block.shape[4]]
    if described is None or described[0] != want:
        raise SnapshotRefused(f"snapshot K/V has shape {None if described is None else described[0]}, the engine needs {want}")
    if described[1] != dtype_name(block.dtype):
        raise SnapshotRefused(f"snapshot K/V is {described[1]}, the cache is {dtype_name(block.dtype)}")
    write = snap.writer("kv")  # decodes what must be decoded first: a refusal here leaves the cache as it was
    # Decode past SPLIT_KV_MIN reads the slot after the sequence (masked): a NaN left there by whatever the
    # block held would still poison the output, so nothing past the prefix survives an import.
    block = engine.kv.block_for_import(n)
    write(block[:, :, :, :n], (slice(None), slice(None), slice(None), slice(0, n)))  # a warm tier dequantises here
    engine.kv.tokens[:] = snap.tokens[:n]
    engine.kv.reserve(n)  # with a live hot budget, the oldest positions go warm now
    return n
