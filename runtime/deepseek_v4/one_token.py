"""The one-token (decode) layer body with int8 weights on the CPU, through the C kernels of `v4_decode.c`.

The torch form of a decode step (Block.forward with S = 1) is ~240 ATen dispatches per layer; here a layer is
about 15 kernel calls: one per mHC site and its norm, one per int8 projection (no bf16 casts around it), the
norms and rotaries, the indexer's scores and top-k, the attention with its inverse rotary, the gate, and
all chosen experts with the shared one. The compressors, the window ring and the stores stay on the torch
code of the cache. The arithmetic follows the torch path (float32, bf16-rounded int8 products), so greedy
tokens are the same with it on or off; the fp32 (exact, unpacked) model never comes here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .cache import V4LayerCache
from .v4_kernels import V4Kernels, WeightTable, int8_rows
from .weights import PackedWeight

if TYPE_CHECKING:
    from .attention import SparseAttention
    from .mhc import HyperConnection
    from .model import Block
    from .moe import MoE


class OneTokenLayer:
    """One Block's decode step through the kernels; built by `DeepseekV4ForCausalLM.use_decode_kernels`."""

    def __init__(self, block: Block, kernels: V4Kernels) -> None:
        self.kernels = kernels
        attn, ffn = block.attn, block.ffn
        self.wo_a = WeightTable(attn.wo_a_groups)
        experts = ffn.experts.packed
        shared = [] if ffn.shared_experts is None else [(ffn.shared_experts.w13, ffn.shared_experts.w2.packed)]
        self.w13 = WeightTable([w13 for w13, _ in experts + shared])
        self.w2 = WeightTable([w2 for _, w2 in experts + shared])

    @staticmethod
    def weights(block: Block) -> list[PackedWeight]:
        """Every packed weight the kernels read for this block."""
        attn, ffn = block.attn, block.ffn
        out = [attn.x_proj, attn.wq_b.packed, attn.wo_b.packed, *attn.wo_a_groups]
        out += [attn.indexer.wq_b.packed] if attn.ratio == 4 else []
        out += [w for pair in ffn.experts.packed for w in pair]
        if ffn.shared_experts is not None:
            out += [ffn.shared_experts.w13, ffn.shared_experts.w2.packed]
        return out

    @staticmethod
    def supports(block: Block) -> bool:
        return all(w is not None and int8_rows(w) for w in OneTokenLayer.weights(block))

    @staticmethod
    def applies(lc: V4LayerCache) -> bool:
        """The kernels read the compressed store as one float32 tensor: not once the warm tier holds part of it."""
        return lc.warm is None

    def __call__(self, block: Block, h: torch.Tensor, ids: torch.Tensor, start: int, lc: V4LayerCache) -> torch.Tensor:
        h = h.contiguous()
        x, mix = self.mhc_pre(block.hc_attn, h, block.attn_norm.weight)
        h = self.kernels.mhc_post(self.attention(block.attn, x, start, lc), h, mix)
        x, mix = self.mhc_pre(block.hc_ffn, h, block.ffn_norm.weight)
        return self.kernels.mhc_post(self.moe(block.ffn, x, ids), h, mix)

    def mhc_pre(self, site: HyperConnection, h: torch.Tensor, norm_weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.kernels.mhc_pre(h, site.fn, site.base, site.scale, site.norm_eps, site.eps, site.iters, norm_weight)

    def attention(self, attn: SparseAttention, x: torch.Tensor, start: int, lc: V4LayerCache) -> torch.Tensor:
        k, cfg = self.kernels, attn.cfg
        H, D, eps = attn.n_heads, attn.head_dim, cfg.rms_norm_eps
        rope, inv_freq = attn.rotary.dim, attn.rotary.inv_freq
        # proj's compressor parts may be kept by the compressor states; its first two are read only here
        proj = k.gemv(attn.x_proj, x).split(attn.x_split, dim=-1)
        qr = k.norm_rope(proj[0], 1, attn.q_norm.weight, eps, in_place=True)
        q = k.norm_rope(k.gemv(attn.wq_b.packed, qr), H, None, eps, rope=rope, inv_freq=inv_freq, pos=start, in_place=True)
        kv = k.norm_rope(proj[1], 1, attn.kv_norm.weight, eps, rope=rope, inv_freq=inv_freq, pos=start, in_place=True)
        tail = lc.win
        if tail is not None:  # the single query sees exactly the last window-1 cached keys
            tail = tail[max(0, tail.shape[0] - attn.window + 1):]
        lc.push_window(kv, start, attn.window)
        comp = idx = None
        if attn.ratio:
            # most steps complete no window: nothing to append (the stores are as they were)
            rows = attn.compressor(proj[2], proj[3], start, lc.comp_state)
            comp = lc.append_compressed(rows) if rows.shape[0] else lc.compressed.view()
            if attn.ratio == 4:
                rows = attn.indexer.compressor(proj[4], proj[5], start, lc.index_state)
                keys = lc.append_index_keys(rows) if rows.shape[0] else lc.index_keys.view()
                idx = self.indexer(attn, qr, proj[6], start, keys)
        o = k.attend_one(q, H, tail, kv, comp, idx, attn.attn_sink, attn.scale, rope, inv_freq, start)
        return k.output_proj(o, self.wo_a, attn.wo_b.packed)

    def indexer(self, attn: SparseAttention, qr: torch.Tensor, head_w: torch.Tensor, start: int,
                keys: torch.Tensor) -> torch.Tensor:
        """The entries of the compressed store the query attends to (every stored key is visible to it)."""
        ix, k = attn.indexer, self.kernels
        top = min(ix.topk, keys.shape[0])
        q = k.norm_rope(k.gemv(ix.wq_b.packed, qr), ix.n_heads, None, 0.0, norm=False, rope=ix.rotary.dim,
                        inv_freq=ix.rotary.inv_freq, pos=start, in_place=True)
        return k.indexer_topk(q, head_w.contiguous(), ix.head_dim ** -0.5 * ix.n_heads ** -0.5, ix.n_heads, keys, top)

    def moe(self, moe: MoE, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        gate, experts, shared = moe.gate, moe.experts, moe.shared_experts
        return self.kernels.moe(x, gate.weight, gate.func, None if gate.hashed else gate.bias,
                                gate.tid2eid[int(ids[0])].long() if gate.hashed else None, gate.topk, gate.norm_topk,
                                gate.scale, self.w13, self.w2, experts.packed[0][1].q.shape[1],
                                0 if shared is None else shared.w2.packed.q.shape[1], shared is not None, experts.limit)


class KernelHead:
    """The packed LM head with its coarse int8 product through the kernel (for `head_logits`: same rows)."""

    def __init__(self, packed: PackedWeight, kernels: V4Kernels) -> None:
        self.packed, self.kernels = packed, kernels

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        return self.kernels.gemv(self.packed, h.contiguous())

    def rows(self, idx: torch.Tensor) -> torch.Tensor | None:
        return self.packed.rows(idx)
