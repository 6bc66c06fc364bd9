"""Export and import of a V4 cache as a `KVSnapshot`: per layer (backbone `layers.i`, MTP `mtp.j`) the window
ring and its start, the compressed rows, the indexer keys (CSA layers), the compressor and indexer partial
states; and the last position's logits (V4 cannot re-run its last token: its compressor states have moved on).

Import validates every invariant against the snapshot's length before building a cache: window rows =
min(length, window) starting at length - rows, compressed rows = length // ratio, indexer keys =
length // 4, partial state rows = length mod ratio, the overlap state present once a window completed.

What the lossy tiers quantise (`lossy`, with `tier_encodings` where a tensor differs; runtime/kv/codec.py encodes
them): the compressed rows int8 warm, int4 cold; the indexer keys int8 in both (they choose each query's top-k
compressed rows, so an int4 grid's error would change choices, not only values); the window rows exact warm, int8
cold. The window is every query's densest attention: on the bench's random V4 at 8k (16 teacher-forced steps after
a restore + 8 tokens) int8 windows doubled the warm tier's first-step logit error (0.031 -> 0.061; int8 keys: no
change) and took the forced agreement from 16/16 to 15/16, so warm, the near-lossless RAM tier, keeps them exact
(1 MiB: 128 B/token at 8k); the cold tier takes the int8 windows to meet its 0.3x of hot (0.34x with exact
windows), and int4 windows raised the worst forced error of a tiny random V4 by half (0.51 -> 0.80 of a 2.0 peak,
2000 tokens) for ~15 B/token at 8k. The last logits stay exact: a fixed 517 KB (63 B/token at 8k, 16 at 32k) that
alone chooses the next token when a prompt adds nothing to the restored prefix, where int8's error (up to a block's
absmax / 254) can be of the order of a flat model's top-2 margin (0.08 median on the random V4). The compressor and
indexer partial states stay exact: they are folded into the next compressed rows (tiny at ratio 4; at ratio 128 up
to 127 rows: ~72 B/token at 8k on the bench's config, from the shapes, inside the cold tier's 0.3x target). The hot
tier is exact: every tensor bit for bit.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..kv.codec import dtype_name
from ..kv.identity import ModelIdentity, config_dict, tokenizer_digest, weights_digest
from ..kv.snapshot import KVMeta, KVSnapshot, SnapshotRefused, contiguous_clone
from .cache import CompressorState, GrowBuffer, V4Cache, V4LayerCache

if TYPE_CHECKING:
    from .engine import V4Engine

STATE_PARTS = ("kv", "score", "prev_kv", "prev_score")


def v4_identity(engine: V4Engine, digest_cache: Path | None) -> ModelIdentity:
    model = engine.model
    return ModelIdentity(architecture="deepseek_v4", weights_digest=weights_digest(engine.loaded.path, digest_cache),
                         tokenizer_digest=tokenizer_digest(engine.tokenizer), config=config_dict(model.config),
                         precision=engine.loaded.precision, weight_format=model.weight_format,
                         numerics=model.config.numerics, kv_dtype="float32")


def layer_length(lc: V4LayerCache) -> int:
    """Positions a layer cache has seen (MTP caches count their own)."""
    return 0 if lc.win is None else lc.win_start + lc.win.shape[0]


def export_v4(engine: V4Engine, cache: V4Cache, tokens: list[int], logits: torch.Tensor) -> KVSnapshot:
    tensors: dict[str, torch.Tensor] = {"last_logits": contiguous_clone(logits)}
    layout: dict[str, list] = {"layers": [], "mtp": []}
    lossy: list[str] = []
    tier_encodings: dict[str, dict[str, str]] = {}
    for group, layers in (("layers", cache.layers), ("mtp", cache.mtp)):
        for i, lc in enumerate(layers):
            name = f"{group}.{i}"
            layout[group].append({"ratio": lc.ratio, "length": layer_length(lc), "win_start": lc.win_start})
            if lc.win is not None:
                tensors[f"{name}.win"] = contiguous_clone(lc.win)
                lossy.append(f"{name}.win")
                tier_encodings[f"{name}.win"] = {"warm": "exact", "cold": "int8"}
            if lc.compressed is not None:
                tensors[f"{name}.compressed"] = contiguous_clone(lc.compressed_rows())  # warm rows dequantised
                lossy.append(f"{name}.compressed")
            if lc.index_keys is not None:
                tensors[f"{name}.index_keys"] = contiguous_clone(lc.index_keys.view())
                lossy.append(f"{name}.index_keys")
                tier_encodings[f"{name}.index_keys"] = {"cold": "int8"}
            for state_name, state in (("comp", lc.comp_state), ("index", lc.index_state)):
                for part in STATE_PARTS:
                    t = getattr(state, part)
                    if t is not None:
                        tensors[f"{name}.{state_name}.{part}"] = contiguous_clone(t)
    meta = KVMeta(architecture="deepseek_v4", identity=engine.identity_digest(), dtype="float32", length=len(tokens),
                  tokens=list(tokens), layout=layout, lossy=lossy,
                  tier_encodings=tier_encodings)
    return KVSnapshot(meta=meta, tensors=tensors)


def _rows(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.shape[0]


def _check(ok: bool, reason: str) -> None:
    if not ok:
        raise SnapshotRefused(reason)


def _state(tensors: dict[str, torch.Tensor], prefix: str, length: int, ratio: int, width: int, half: int) -> CompressorState:
    """A compressor state with `length mod ratio` partial rows and, for the overlapping ratio 4, the previous
    window's first half once one window completed."""
    st = CompressorState(*(tensors.get(f"{prefix}.{p}") for p in STATE_PARTS))
    partial = length % ratio
    for part in ("kv", "score"):
        t = getattr(st, part)
        _check(_rows(t) == partial, f"{prefix}.{part} has {_rows(t)} rows; {length} tokens at ratio {ratio} leave {partial}")
        _check(t is None or list(t.shape) == [partial, width], f"{prefix}.{part} has shape {None if t is None else list(t.shape)}")
    has_prev = ratio == 4 and length >= ratio
    for part in ("prev_kv", "prev_score"):
        t = getattr(st, part)
        _check((t is not None) == has_prev, f"{prefix}.{part} is {'missing' if has_prev else 'unexpected'} at length {length}")
        _check(t is None or list(t.shape) == [ratio, half], f"{prefix}.{part} has shape {None if t is None else list(t.shape)}")
    return st


def _layer(tensors: dict[str, torch.Tensor], name: str, spec: dict, ratio: int, cfg, length: int,
           from_zero: bool = True) -> V4LayerCache:
    """`from_zero`: the layer saw positions 0..length-1 (the backbone); an MTP block's window may start later."""
    _check(spec.get("ratio") == ratio, f"{name} has compression ratio {spec.get('ratio')}, the model {ratio}")
    lc = V4LayerCache(cfg.head_dim, cfg.index_head_dim, ratio)
    win = tensors.get(f"{name}.win")
    rows = min(length, cfg.window) if from_zero else min(_rows(win), cfg.window)
    _check(_rows(win) == rows, f"{name}.win has {_rows(win)} rows; {length} tokens keep {rows} in a window of {cfg.window}")
    _check(win is None or list(win.shape) == [rows, cfg.head_dim], f"{name}.win has shape {list(win.shape) if win is not None else None}")
    _check(spec.get("win_start") == (length - rows if win is not None else 0), f"{name} window starts at "
           f"{spec.get('win_start')}, not {length - rows}")
    lc.win, lc.win_start = win, length - rows if win is not None else 0
    if ratio:
        comp = tensors.get(f"{name}.compressed", torch.empty(0, cfg.head_dim))
        _check(list(comp.shape) == [length // ratio, cfg.head_dim], f"{name}.compressed has shape {list(comp.shape)}; "
               f"{length} tokens at ratio {ratio} make {length // ratio} rows of {cfg.head_dim}")
        lc.compressed = GrowBuffer.of(comp.float())
        coff = 2 if ratio == 4 else 1
        lc.comp_state = _state(tensors, f"{name}.comp", length, ratio, coff * cfg.head_dim, cfg.head_dim)
    if ratio == 4:
        keys = tensors.get(f"{name}.index_keys", torch.empty(0, cfg.index_head_dim))
        _check(list(keys.shape) == [length // 4, cfg.index_head_dim], f"{name}.index_keys has shape {list(keys.shape)}; "
               f"{length} tokens make {length // 4} rows of {cfg.index_head_dim}")
        lc.index_keys = GrowBuffer.of(keys)
        lc.index_state = _state(tensors, f"{name}.index", length, 4, 2 * cfg.index_head_dim, cfg.index_head_dim)
    return lc


def import_v4(engine: V4Engine, snap: KVSnapshot) -> tuple[V4Cache, torch.Tensor]:
    """A cache (and the last logits) rebuilt from `snap`; raises SnapshotRefused on any broken invariant."""
    snap.check_identity(engine.identity_digest(), "deepseek_v4")
    cfg, length, tensors = engine.config, snap.length, snap.tensors
    _check(length < engine.context_window, f"snapshot of {length} tokens does not fit the context window of "
           f"{engine.context_window}")
    for name, t in tensors.items():
        _check(t.dtype == torch.float32, f"{name} is {dtype_name(t.dtype)}, the V4 cache is float32")
    logits = tensors.get("last_logits")
    _check(logits is not None and list(logits.shape) == [cfg.vocab_size], "the last logits are missing or misshapen")
    layout = snap.meta.layout
    groups = (layout.get("layers"), layout.get("mtp"))
    _check(all(isinstance(g, list) and all(isinstance(x, dict) for x in g) for g in groups), "the snapshot layout is malformed")
    _check(len(layout["layers"]) == len(cfg.compress_ratios) and len(layout["mtp"]) == len(cfg.mtp_compress_ratios),
           "snapshot has a different number of layers")
    cache = V4Cache.__new__(V4Cache)
    cache.length = length
    cache.layers = [_layer(tensors, f"layers.{i}", spec, r, cfg, length)
                    for i, (spec, r) in enumerate(zip(layout["layers"], cfg.compress_ratios))]
    cache.mtp = []
    for j, (spec, r) in enumerate(zip(layout["mtp"], cfg.mtp_compress_ratios)):
        n = spec.get("length", 0)
        _check(isinstance(n, int) and 0 <= n <= length + 1, f"mtp.{j} length {n} is out of range")
        _check(r == 0, f"mtp.{j}: MTP blocks with compression are not restorable")
        cache.mtp.append(_layer(tensors, f"mtp.{j}", spec, r, cfg, n, from_zero=False))
    return cache, logits
