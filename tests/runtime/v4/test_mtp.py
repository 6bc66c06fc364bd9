"""The MTP block (`mtp.0.*`): loaded from the official layout into a module of the model, and its draft
logits computed as the architecture notes describe (§3.8): e = enorm(embed(next ids)),
x = e_proj(e) broadcast over the hc streams + h_proj(hnorm(h)) with h the backbone's final streams,
then a sliding-window block, its own hc_head and norm, and the model's LM head."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from dsv4.runtime.deepseek_v4.cache import V4LayerCache
from dsv4.runtime.deepseek_v4 import checkpoint as ck
from . import checkpoint_writer as wr
from dsv4.runtime.deepseek_v4.model import Block

from .tiny import random_model, tiny_config

VOCAB = 500


def mtp_config():
    return dataclasses.replace(tiny_config(vocab=VOCAB), num_mtp_layers=1, mtp_compress_ratios=(0,))


def test_official_checkpoint_fills_the_mtp_block(tmp_path):
    src = random_model(mtp_config(), seed=6)
    wr.write_official(src, tmp_path, shards=3)
    model = ck.load_v4(tmp_path)
    assert model.mtp_loaded and len(model.mtp) == 1 and model.mtp[0].attn.ratio == 0
    a, b = src.mtp[0], model.mtp[0]
    assert torch.equal(a.hnorm.weight, b.hnorm.weight) and torch.equal(a.hc_head_fn, b.hc_head_fn)
    # e_proj is FP8 with block scales in the official layout, the routed experts FP4
    wa, wb = a.e_proj.weight, b.e_proj.weight
    assert not torch.equal(wa, wb) and ((wa - wb).abs() <= wa.abs() * 2 ** -3 + 1e-6).all()
    assert torch.equal(b.e_proj.weight, ck.dequant_fp8_blocks(*wr.quant_fp8_blocks(wa)))
    assert b.ffn.experts.w1.abs().sum() > 0 and not b.ffn.gate.hashed


def test_draft_logits_follow_the_equations():
    model = random_model(mtp_config(), seed=7)
    ids = torch.randint(0, VOCAB, (40,), generator=torch.Generator().manual_seed(1))
    cache = model.new_cache()
    with torch.no_grad():
        h = model.hidden_streams(ids[:-1], cache)  # (S, hc, d)
    nxt = ids[1:]
    got = model.mtp_logits(h, nxt, 0, cache)

    mtp, cfg = model.mtp[0], model.config
    eps = cfg.rms_norm_eps
    with torch.no_grad():
        e = F.rms_norm(model.embed(nxt), (cfg.hidden_size,), mtp.enorm.weight, eps)
        hn = F.rms_norm(h, (cfg.hidden_size,), mtp.hnorm.weight, eps)
        x = (e @ mtp.e_proj.weight.T)[:, None, :] + hn @ mtp.h_proj.weight.T
        lc = V4LayerCache(cfg.head_dim, cfg.index_head_dim, 0)
        x = Block.forward(mtp, x, nxt, 0, lc)
        flat = F.rms_norm(x.flatten(1), (x.shape[1] * x.shape[2],), eps=eps)
        pre = torch.sigmoid(flat @ mtp.hc_head_fn.T * mtp.hc_head_scale + mtp.hc_head_base) + cfg.hc_eps
        out = F.rms_norm((pre[:, :, None] * x).sum(1), (cfg.hidden_size,), mtp.norm.weight, eps)
        want = out @ model.head.weight.T
    assert got.shape == (39, VOCAB) and (got - want).abs().max() < 1e-4


def test_draft_logits_chunked_with_the_mtp_cache_equal_one_pass():
    model = random_model(mtp_config(), seed=8)
    ids = torch.randint(0, VOCAB, (30,), generator=torch.Generator().manual_seed(2))
    one = model.new_cache()
    with torch.no_grad():
        whole = model.mtp_logits(model.hidden_streams(ids[:-1], one), ids[1:], 0, one)
    cache, parts, pos = model.new_cache(), [], 0
    for size in (11, 1, 1, 9, 7):
        with torch.no_grad():
            h = model.hidden_streams(ids[pos:pos + size], cache)
        parts.append(model.mtp_logits(h, ids[pos + 1:pos + size + 1], pos, cache))
        pos += size
    assert (torch.cat(parts) - whole).abs().max() < 1e-4
    assert len(cache.mtp) == 1 and cache.mtp[0].win is not None


def test_packed_weights_cover_the_mtp_block():
    model = random_model(mtp_config(), seed=9)
    ids = torch.randint(0, VOCAB, (20,), generator=torch.Generator().manual_seed(4))
    c = model.new_cache()
    with torch.no_grad():
        ref = model.mtp_logits(model.hidden_streams(ids[:-1], c), ids[1:], 0, c)
    model.pack_weights("int8")
    assert model.mtp[0].attn.x_proj is not None and model.mtp[0].ffn.experts.packed
    c = model.new_cache()
    with torch.no_grad():
        got = model.mtp_logits(model.hidden_streams(ids[:-1], c), ids[1:], 0, c)
    assert (got - ref).abs().max() < 0.1 * ref.abs().max()
