"""The prefix-chained hash of token blocks that keys KV snapshots, seeded with the model identity:
h_0 = H(identity), h_i = H(h_{i-1} || block_i). Equal h_i means the same model and the same first i blocks,
so one indexed lookup finds the longest stored prefix of a prompt; a different identity changes every hash."""

from __future__ import annotations

import hashlib

import numpy as np

BLOCK_TOKENS = 64


def seed(identity: str) -> str:
    return hashlib.sha256(b"dsv4-kv-chain\0" + identity.encode()).hexdigest()


def step(prev: str, tokens: list[int]) -> str:
    return hashlib.sha256(prev.encode() + np.asarray(tokens, dtype="<u4").tobytes()).hexdigest()


def block_hashes(identity: str, ids: list[int], block: int = BLOCK_TOKENS) -> list[str]:
    """h_1..h_K for the K full blocks of `ids`."""
    out, h = [], seed(identity)
    for i in range(0, len(ids) - block + 1, block):
        h = step(h, ids[i : i + block])
        out.append(h)
    return out


def prefix_hash(identity: str, ids: list[int], n: int, blocks: list[str] | None = None,
                block: int = BLOCK_TOKENS) -> str:
    """The hash of `ids[:n]`: its full blocks' chain, then the partial tail (if any) as one more step.
    `blocks`: `block_hashes(identity, ids)` when already computed."""
    full = n // block
    blocks = blocks if blocks is not None and len(blocks) >= full else block_hashes(identity, ids[: full * block], block)
    h = blocks[full - 1] if full else seed(identity)
    return step(h, ids[full * block : n]) if n % block else h
