"""The one-token (decode) layer body with int8 weights on the CPU, through the C kernels of `v4_decode.c`.

The torch form of a decode step (Block.forward with S = 1) is ~240 ATen dispatches per layer; here a layer is
about 15 C calls and almost no ATen ones: one per mHC site and its norm, one per int8 projection (no bf16 casts
around it), the norms and rotaries, the compressors' steps (`v4_compressor.c`, in place on their states), the
indexer's scores and top-k, the attention with its inverse rotary, the output projection, and the gate with all
chosen experts and the shared one. The calls take addresses: the weights, norms and rotary tables are read
from tensors kept here (not through nn.Module attribute lookups), the intermediate results go to buffers made
once per layer, the new key to the cache's window ring and a completed compressed row straight to its store.
The arithmetic follows the torch path (float32, bf16-rounded int8 products), so greedy tokens are the same
with it on or off; the fp32 (exact, unpacked) model never comes here.

The buffers are reused by every step: one model runs one step at a time (the engine holds its lock around a
step), and nothing the cache keeps points into them (the window, states and stores copy what they keep).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .cache import CompressorState, GrowBuffer, V4LayerCache
from .v4_kernels import GATE_FUNCS, V4Kernels, WeightTable, int8_rows, moe_status
from .weights import PackedWeight

if TYPE_CHECKING:
    from .attention import Compressor
    from .model import Block

F32 = 4  # bytes of a float32


class OneTokenLayer:
    """One Block's decode step through the kernels; built by `DeepseekV4ForCausalLM.use_decode_kernels`."""

    def __init__(self, block: Block, kernels: V4Kernels) -> None:
        self.kernels = kernels
        attn, ffn = block.attn, block.ffn
        cfg = attn.cfg
        self.hc, self.d = cfg.hc_mult, cfg.hidden_size
        self.H, self.D, self.eps, self.window, self.ratio = attn.n_heads, attn.head_dim, cfg.rms_norm_eps, attn.window, attn.ratio
        self.rope, self.inv_freq, self.sink, self.scale = attn.rotary.dim, attn.rotary.inv_freq, attn.attn_sink, attn.scale
        self.sites = [(site.fn, site.base, site.scale, site.norm_eps, site.eps, site.iters, norm.weight)
                      for site, norm in ((block.hc_attn, block.attn_norm), (block.hc_ffn, block.ffn_norm))]
        self.x_proj, self.wq_b, self.wo_b = attn.x_proj, attn.wq_b.packed, attn.wo_b.packed
        self.q_norm, self.kv_norm = attn.q_norm.weight, attn.kv_norm.weight
        self.wo_a = WeightTable(attn.wo_a_groups)
        self.compressor = CompressorStep(attn.compressor) if self.ratio else None
        self.indexer = attn.indexer if self.ratio == 4 else None
        # every intermediate result of a step, in buffers of this layer (see the module docstring)
        self.x, self.mix = torch.empty(1, self.d), torch.empty(self.hc + self.hc * self.hc)
        self.mid = torch.empty(1, self.hc, self.d)  # the streams between the attention and the MoE
        self.proj = torch.empty(1, sum(attn.x_split))
        self.parts = self.proj.split(attn.x_split, dim=-1)  # views made once: q-lora, kv, the compressors', head weights
        self.q, self.o, self.attn_out = torch.empty(1, self.H * self.D), torch.empty(1, self.H * self.D), torch.empty(1, self.d)
        if self.indexer is not None:
            ix = self.indexer
            self.index_compressor, self.index_wq_b = CompressorStep(ix.compressor), ix.wq_b.packed
            self.index_q, self.index_idx = torch.empty(1, ix.n_heads * ix.head_dim), torch.empty(ix.topk, dtype=torch.long)
            self.index_scale = ix.head_dim ** -0.5 * ix.n_heads ** -0.5
        gate, experts, shared = ffn.gate, ffn.experts, ffn.shared_experts
        self.gate = (gate.weight, GATE_FUNCS[gate.func], None if gate.hashed else gate.bias, gate.tid2eid if gate.hashed else None,
                     gate.topk, int(gate.norm_topk), gate.scale)
        extra = [] if shared is None else [(shared.w13, shared.w2.packed)]
        self.w13 = WeightTable([w13 for w13, _ in experts.packed + extra])
        self.w2 = WeightTable([w2 for _, w2 in experts.packed + extra])
        self.inter, self.inter_shared = experts.packed[0][1].q.shape[1], 0 if shared is None else shared.w2.packed.q.shape[1]
        self.has_shared, self.limit = shared is not None, experts.limit
        self.moe_out = torch.empty(1, self.d)

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

    def __call__(self, h: torch.Tensor, ids: torch.Tensor, start: int, lc: V4LayerCache) -> torch.Tensor:
        h = h.contiguous()  # (1, hc, d)
        self.mhc_pre(0, h)
        self.attention(start, lc)
        self.mhc_post(self.attn_out, h, self.mid)
        self.mhc_pre(1, self.mid)
        self.moe(ids)
        out = torch.empty_like(h)  # the next streams: a new tensor (the caller may keep the last layer's)
        self.mhc_post(self.moe_out, self.mid, out)
        return out

    def mhc_pre(self, site: int, h: torch.Tensor) -> None:
        """The site's mixes into self.mix, the sub-layer's normed input into self.x."""
        fn, base, scale, norm_eps, eps, iters, norm_weight = self.sites[site]
        if self.kernels.c.v4_mhc_pre(h.data_ptr(), self.hc, self.d, fn.data_ptr(), base.data_ptr(), scale.data_ptr(), norm_eps, eps,
                             iters, norm_weight.data_ptr(), self.x.data_ptr(), self.mix.data_ptr()):
            raise ValueError(f"mHC with {self.hc} streams is not supported by the V4 kernels")

    def mhc_post(self, o: torch.Tensor, h: torch.Tensor, out: torch.Tensor) -> None:
        self.kernels.c.v4_mhc_post(o.data_ptr(), h.data_ptr(), self.mix.data_ptr(), self.hc, self.d, out.data_ptr())

    def gemv(self, w: PackedWeight, x: int, out: int) -> None:
        N, K = w.q.shape
        self.kernels.c.v4_int8_gemv(x, w.q.data_ptr(), w.scale.data_ptr(), out, N, K, torch.get_num_threads())

    def norm_rope(self, x: int, rows: int, dim: int, weight: torch.Tensor | None, eps: float, norm: bool, rope: int,
                  inv_freq: torch.Tensor, pos: int) -> None:
        """In place: rope(rms_norm(x) * weight) per row of `dim`."""
        if self.kernels.c.v4_norm_rope(x, x, rows, dim, None if weight is None else weight.data_ptr(), eps, int(norm), rope,
                               inv_freq.data_ptr(), pos, 0):
            raise ValueError(f"rotary width {rope} is not supported by the V4 kernels")

    def attention(self, start: int, lc: V4LayerCache) -> None:
        """The attention sub-layer of self.x into self.attn_out; the new key and compressed rows into the cache."""
        H, D, rope = self.H, self.D, self.rope
        qr, kv = self.parts[0], self.parts[1]
        self.gemv(self.x_proj, self.x.data_ptr(), self.proj.data_ptr())
        self.norm_rope(qr.data_ptr(), 1, qr.shape[1], self.q_norm, self.eps, True, 0, self.inv_freq, 0)
        self.gemv(self.wq_b, qr.data_ptr(), self.q.data_ptr())
        self.norm_rope(self.q.data_ptr(), H, D, None, self.eps, True, rope, self.inv_freq, start)
        # the single query sees exactly the last window-1 cached keys, then its own; the view stays valid after
        # the push (rows of a window view never change). The new key is normed and rotated straight into the
        # window's ring.
        win = lc.win
        n_win = 0 if win is None else win.shape[0]
        n_tail = min(n_win, self.window - 1)
        tail = None if n_tail == 0 else win.data_ptr() + (n_win - n_tail) * D * F32
        fresh = lc.reserve_window(1, self.window, kv)
        if self.kernels.c.v4_norm_rope(kv.data_ptr(), fresh, 1, D, self.kv_norm.data_ptr(), self.eps, 1, rope,
                                       self.inv_freq.data_ptr(), start, 0):
            raise ValueError(f"rotary width {rope} is not supported by the V4 kernels")
        lc.commit_window(1, start, self.window)
        comp = idx = None
        n_comp = 0
        if self.ratio:
            # most steps complete no window: nothing is stored
            self.compressor(self.kernels.c, self.parts[2], self.parts[3], start, lc.comp_state, lc.compressed)
            comp, n_comp = lc.compressed.data.data_ptr(), lc.compressed.n
            if self.indexer is not None:
                self.index_compressor(self.kernels.c, self.parts[4], self.parts[5], start, lc.index_state, lc.index_keys)
                n_comp = self.select(qr, start, lc.index_keys)
                idx = self.index_idx.data_ptr()
        if self.kernels.c.v4_attend_one(self.q.data_ptr(), H, D, tail, n_tail, fresh, 1, comp, idx, n_comp,
                                self.sink.data_ptr(), self.scale, self.o.data_ptr(), rope, self.inv_freq.data_ptr(), start):
            raise ValueError(f"rotary width {rope} is not supported by the V4 kernels")
        R, width = self.wo_a.tensors[0][0].shape
        self.kernels.c.v4_output_proj(self.o.data_ptr(), len(self.wo_a.tensors), width, R, self.wo_a.q, self.wo_a.scale,
                              self.wo_b.q.data_ptr(), self.wo_b.scale.data_ptr(), self.wo_b.q.shape[0],
                              self.attn_out.data_ptr(), torch.get_num_threads())

    def select(self, qr: torch.Tensor, start: int, keys: GrowBuffer) -> int:
        """The indexer: the entries of the compressed store the query attends to (every stored key is visible to
        it) into self.index_idx; returns how many."""
        ix = self.indexer
        top = min(ix.topk, keys.n)
        self.gemv(self.index_wq_b, qr.data_ptr(), self.index_q.data_ptr())
        self.norm_rope(self.index_q.data_ptr(), ix.n_heads, ix.head_dim, None, 0.0, False, ix.rotary.dim, ix.rotary.inv_freq,
                       start)
        self.kernels.c.v4_indexer_topk(self.index_q.data_ptr(), self.parts[6].data_ptr(), self.index_scale, ix.n_heads, ix.head_dim,
                               keys.data.data_ptr(), keys.n, top, self.index_idx.data_ptr())
        return top

    def moe(self, ids: torch.Tensor) -> None:
        """The MoE sub-layer of self.x into self.moe_out; hash routing reads the token id in C."""
        weight, func, bias, table, k, norm_topk, route_scale = self.gate
        if table is not None and (table.dtype != torch.long or not table.is_contiguous()):
            table = table.long().contiguous()
        if ids.dtype != torch.long:
            ids = ids.long()
        E, d = weight.shape
        moe_status(self.kernels.c.v4_moe(
            self.x.data_ptr(), d, weight.data_ptr(), E, func, None if bias is None else bias.data_ptr(),
            None if table is None else table.data_ptr(), 0 if table is None else table.shape[0], ids.data_ptr(), k,
            norm_topk, route_scale, self.inter, self.inter_shared, self.w13.q, self.w13.scale, self.w2.q, self.w2.scale,
            int(self.has_shared), self.limit, self.moe_out.data_ptr(), torch.get_num_threads()), E, k)


class CompressorStep:
    """One position into a compressor's state through `v4_compress_step`: the state's kv/score rows live in
    buffers of the state that the kernel writes in place, and the entry of a window it completes goes straight
    into the store's next row."""

    def __init__(self, comp: Compressor) -> None:
        self.m, self.c, self.overlap = comp.ratio, comp.head_dim, comp.overlap
        self.ape, self.norm_weight, self.norm_eps = comp.ape, comp.norm.weight, comp.norm.eps
        self.rope, self.inv_freq = comp.rotary.dim, comp.rotary.inv_freq

    def __call__(self, c, kv: torch.Tensor, score: torch.Tensor, start: int, st: CompressorState, store: GrowBuffer) -> None:
        m, half, width = self.m, self.c, kv.shape[1]
        r = 0 if st.kv is None else st.kv.shape[0]
        if not st.owns_rows():  # the torch path (a prefill chunk) left tensors of its own: continue in a buffer
            rows = torch.empty(2, m, width)
            if r:
                rows[0, :r], rows[1, :r] = st.kv, st.score
            st.rows, st.row_views = rows, {}
        prev = prev_score = None
        if self.overlap:
            if not st.owns_prev():
                st.prev = torch.empty(2, m, half)
                if st.prev_kv is not None:
                    st.prev[0], st.prev[1] = st.prev_kv, st.prev_score
                st.prev_views = tuple(st.prev)
            prev, prev_score = st.prev.data_ptr(), st.prev.data_ptr() + m * half * F32
        rows = st.rows.data_ptr()
        status = c.v4_compress_step(kv.data_ptr(), score.data_ptr(), self.ape.data_ptr(), m, half, int(self.overlap), start,
                                    rows, rows + m * width * F32, r, prev, prev_score, int(st.prev_kv is not None),
                                    self.norm_weight.data_ptr(), self.norm_eps, self.rope, self.inv_freq.data_ptr(),
                                    store.next_row_ptr())
        if status == 2:
            raise ValueError(f"rotary width {self.rope} is not supported by the V4 kernels")
        if status == 1:  # a window completed: its entry is the store's next row, the state starts again
            store.commit(1)
            st.kv = st.score = None
            if self.overlap:
                st.prev_kv, st.prev_score = st.prev_views
            return
        views = st.row_views.get(r + 1)
        if views is None:
            views = st.row_views[r + 1] = (st.rows[0, :r + 1], st.rows[1, :r + 1])
        st.kv, st.score = views


class KernelHead:
    """The final mHC head, norm and packed LM head of one token through the kernels: two C calls instead of ~20
    ATen ones (the coarse int8 product, its best candidates refined in float32 as `head_logits` does)."""

    def __init__(self, model, kernels: V4Kernels) -> None:
        from ..layers.embedding import REFINE_TOP

        self.kernels, self.packed, self.top = kernels, model.head_packed, REFINE_TOP
        cfg = model.config
        self.fn, self.base, self.scale = model.hc_head_fn, model.hc_head_base, model.hc_head_scale
        self.norm_eps, self.hc_eps, self.norm_weight = cfg.rms_norm_eps, cfg.hc_eps, model.norm.weight

    def collapse(self, h: torch.Tensor) -> torch.Tensor:
        """(1, hc, d) streams -> (1, d) normed hidden state, as `model.collapse`."""
        return self.kernels.collapse(h.contiguous(), self.fn, self.base, self.scale, self.norm_eps, self.hc_eps, self.norm_weight)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(1, d) -> (1, V) float32, as `head_logits` with the packed int8 head."""
        return self.kernels.head_logits(self.packed, x.contiguous(), self.top)
