"""The one-token (decode) layer body with int8 weights on the CPU, through the C kernels of `v4_decode.c`.

The torch form of a decode step (Block.forward with S = 1) is ~240 ATen dispatches per layer; here a layer is one
C call (`v4_layer_step` in v4_layer.c): the mHC sites and their norms, the int8 projections (no bf16 casts around
them), the norms and rotaries, the compressors' steps (`v4_compressor.c`, in place on their states), the
indexer's scores and top-k, the attention with its inverse rotary, the output projection, and the gate with all
chosen experts and the shared one. What stays fixed (weights, norms, rotary tables, sizes, the layer's buffers)
is written once into a plan of addresses (`LayerPlan`); Python prepares the cache's side of a step (the window
ring's next row, the compressor states' buffers, the stores' next rows) and commits it after the call. The
arithmetic follows the torch path (float32, bf16-rounded int8 products), so greedy tokens are the same with it on
or off; the fp32 (exact, unpacked) model never comes here.

The buffers are reused by every step: one model runs one step at a time (the engine holds its lock around a
step), and nothing the cache keeps points into them (the window, states and stores copy what they keep).
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

import torch

from .cache import CompressorState, GrowBuffer, V4LayerCache
from .v4_kernels import GATE_FUNCS, V4Kernels, WeightTable, int8_rows
from .weights import PackedWeight

if TYPE_CHECKING:
    from .attention import Compressor
    from .model import Block

F32 = 4  # bytes of a float32


PLAN_SLOTS = (
    "hc", "dim", "heads", "head_dim", "ratio", "rope", "inv_freq", "sink",
    *(f"site{i}_{part}" for i in (0, 1) for part in ("fn", "base", "scale", "iters", "norm")),
    "xp_q", "xp_s", "xp_n", "q_lora", "off_c0", "off_c1", "off_headw", "q_norm", "kv_norm", "wqb_q", "wqb_s",
    "woa_q", "woa_s", "woa_g", "woa_in", "woa_r", "wob_q", "wob_s",
    *(f"c{i}_{part}" for i in (0, 1) for part in ("m", "c", "overlap", "ape", "norm", "rope", "inv_freq")),
    "ix_wqb_q", "ix_wqb_s", "ix_heads", "ix_hd", "ix_topk", "ix_rope", "ix_inv_freq",
    "gate_w", "gate_e", "gate_func", "gate_bias", "gate_table", "gate_rows", "gate_k", "gate_norm_topk", "moe_i",
    "moe_i_shared", "w13_q", "w13_s", "w2_q", "w2_s", "moe_shared",
    "buf_x", "buf_mix", "buf_proj", "buf_q", "buf_o", "buf_attn", "buf_mid", "buf_index_q", "buf_index_idx", "buf_moe",
)  # the order of v4_layer.c's enum
FLOAT_SLOTS = ("eps", "site0_norm_eps", "site0_eps", "site1_norm_eps", "site1_eps", "attn_scale", "c0_eps", "c1_eps",
               "ix_scale", "route_scale", "limit")
LAYER_ERRORS = {-1: "mHC with this many streams is not supported by the V4 kernels",
                -2: "this rotary width is not supported by the V4 kernels",
                -3: "the hashed expert ids are out of range for the experts", -4: "the token id is out of range of the "
                "hash-routing table", -5: "more experts per token than the V4 kernels take"}


def address(t: torch.Tensor | ctypes.Array | None) -> int:
    if t is None:
        return 0
    return t.data_ptr() if isinstance(t, torch.Tensor) else ctypes.addressof(t)


class OneTokenLayer:
    """One Block's decode step through the kernels; built by `DeepseekV4ForCausalLM.use_decode_kernels`."""

    def __init__(self, block: Block, kernels: V4Kernels) -> None:
        self.kernels = kernels
        attn, ffn = block.attn, block.ffn
        cfg = attn.cfg
        self.window, self.ratio = attn.window, attn.ratio
        hc, d, H, D = cfg.hc_mult, cfg.hidden_size, attn.n_heads, attn.head_dim
        self.x_proj = attn.x_proj
        self.wo_a = WeightTable(attn.wo_a_groups)
        gate, experts, shared = ffn.gate, ffn.experts, ffn.shared_experts
        extra = [] if shared is None else [(shared.w13, shared.w2.packed)]
        self.w13 = WeightTable([w13 for w13, _ in experts.packed + extra])
        self.w2 = WeightTable([w2 for _, w2 in experts.packed + extra])
        table = gate.tid2eid.long().contiguous() if gate.hashed else None  # the int64 rows the kernel reads
        # every intermediate result of a step, in buffers of this layer (see the module docstring)
        self.proj = torch.empty(1, sum(attn.x_split))
        self.parts = self.proj.split(attn.x_split, dim=-1)  # q-lora, kv, the compressors' kv and score, head weights
        buffers = {"buf_x": torch.empty(1, d), "buf_mix": torch.empty(hc + hc * hc), "buf_proj": self.proj,
                   "buf_q": torch.empty(1, H * D), "buf_o": torch.empty(1, H * D), "buf_attn": torch.empty(1, d),
                   "buf_mid": torch.empty(1, hc, d), "buf_moe": torch.empty(1, d)}
        offsets = [sum(attn.x_split[:i]) for i in range(len(attn.x_split))]
        plan = {"hc": hc, "dim": d, "heads": H, "head_dim": D, "ratio": self.ratio, "rope": attn.rotary.dim,
                "inv_freq": attn.rotary.inv_freq, "sink": attn.attn_sink,
                "xp_q": attn.x_proj.q, "xp_s": attn.x_proj.scale, "xp_n": attn.x_proj.q.shape[0], "q_lora": attn.x_split[0],
                "q_norm": attn.q_norm.weight, "kv_norm": attn.kv_norm.weight, "wqb_q": attn.wq_b.packed.q,
                "wqb_s": attn.wq_b.packed.scale, "woa_g": len(attn.wo_a_groups), "woa_in": attn.wo_a_groups[0].q.shape[1],
                "woa_r": attn.wo_a_groups[0].q.shape[0], "wob_q": attn.wo_b.packed.q, "wob_s": attn.wo_b.packed.scale,
                "gate_w": gate.weight, "gate_e": gate.weight.shape[0], "gate_func": GATE_FUNCS[gate.func],
                "gate_bias": None if gate.hashed else gate.bias, "gate_table": table,
                "gate_rows": 0 if table is None else table.shape[0], "gate_k": gate.topk, "gate_norm_topk": int(gate.norm_topk),
                "moe_i": experts.packed[0][1].q.shape[1], "moe_i_shared": 0 if shared is None else shared.w2.packed.q.shape[1],
                "moe_shared": int(shared is not None)}
        floats = {"eps": cfg.rms_norm_eps, "attn_scale": attn.scale, "route_scale": gate.scale, "limit": experts.limit}
        for i, (site, norm) in enumerate(((block.hc_attn, block.attn_norm), (block.hc_ffn, block.ffn_norm))):
            plan |= {f"site{i}_fn": site.fn, f"site{i}_base": site.base, f"site{i}_scale": site.scale,
                     f"site{i}_iters": site.iters, f"site{i}_norm": norm.weight}
            floats |= {f"site{i}_norm_eps": site.norm_eps, f"site{i}_eps": site.eps}
        self.compressors: list[CompressorStep] = []
        if self.ratio:
            self.compressors.append(CompressorStep(attn.compressor))
            plan["off_c0"] = offsets[2]
        if self.ratio == 4:
            ix = attn.indexer
            self.compressors.append(CompressorStep(ix.compressor))
            plan |= {"off_c1": offsets[4], "off_headw": offsets[6], "ix_wqb_q": ix.wq_b.packed.q,
                     "ix_wqb_s": ix.wq_b.packed.scale, "ix_heads": ix.n_heads, "ix_hd": ix.head_dim, "ix_topk": ix.topk,
                     "ix_rope": ix.rotary.dim, "ix_inv_freq": ix.rotary.inv_freq}
            floats["ix_scale"] = ix.head_dim ** -0.5 * ix.n_heads ** -0.5
            buffers |= {"buf_index_q": torch.empty(1, ix.n_heads * ix.head_dim),
                        "buf_index_idx": torch.empty(ix.topk, dtype=torch.long)}
        for i, step in enumerate(self.compressors):
            plan |= {f"c{i}_m": step.m, f"c{i}_c": step.c, f"c{i}_overlap": int(step.overlap), f"c{i}_ape": step.ape,
                     f"c{i}_norm": step.norm_weight, f"c{i}_rope": step.rope, f"c{i}_inv_freq": step.inv_freq}
            floats[f"c{i}_eps"] = step.norm_eps
        self.plan_items, self.floats = plan | buffers, floats
        self.plan = self.fplan = None
        self.plan_key = 0

    def write_plan(self) -> None:
        """The plan's addresses (again after a deep copy of the model: every tensor here is then a new one)."""
        if len(PLAN_SLOTS) != self.kernels.c.v4_layer_plan_slots():
            raise RuntimeError("one_token.PLAN_SLOTS does not match v4_layer.c")
        # the pointer tables are the tables' own (a deep copy makes new ones), not kept in plan_items
        items = self.plan_items | {"woa_q": self.wo_a.q, "woa_s": self.wo_a.scale, "w13_q": self.w13.q,
                                   "w13_s": self.w13.scale, "w2_q": self.w2.q, "w2_s": self.w2.scale}
        self.plan = torch.tensor([v if isinstance(v, int) else address(v) for v in map(items.get, PLAN_SLOTS)])
        self.fplan = torch.tensor([self.floats.get(name, 0.0) for name in FLOAT_SLOTS], dtype=torch.float64)
        self.plan_key = self.x_proj.q.data_ptr()

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
        if self.plan_key != self.x_proj.q.data_ptr():
            self.write_plan()
        h = h.contiguous()  # (1, hc, d)
        ids = ids if ids.dtype == torch.long else ids.long()
        # the single query sees exactly the last window-1 cached keys, then its own; the view stays valid after
        # the push (rows of a window view never change). The new key goes straight into the window's ring.
        win = lc.win
        n_win = 0 if win is None else win.shape[0]
        n_tail = min(n_win, self.window - 1)
        tail = None if n_tail == 0 else win.data_ptr() + (n_win - n_tail) * win.shape[1] * F32
        slot = lc.reserve_window(1, self.window, self.parts[1])
        stores = [lc.compressed, lc.index_keys][:len(self.compressors)]
        states = [lc.comp_state, lc.index_state][:len(self.compressors)]
        args = [arg for step, st, store in zip(self.compressors, states, stores) for arg in step.prepare(st, store)]
        args += [None, 0, None, 0, None, 0, None] * (2 - len(self.compressors))
        out = torch.empty_like(h)  # the next streams: a new tensor (the caller may keep the last layer's)
        status = self.kernels.c.v4_layer_step(self.plan.data_ptr(), self.fplan.data_ptr(), h.data_ptr(), out.data_ptr(),
                                              start, ids.data_ptr(), tail, n_tail, slot, *args, torch.get_num_threads())
        if status < 0:
            raise ValueError(LAYER_ERRORS[status])
        lc.commit_window(1, start, self.window)
        for i, (step, st, store) in enumerate(zip(self.compressors, states, stores)):
            step.finish(st, store, bool(status >> i & 1))
        return out


class CompressorStep:
    """One position into a compressor's state through `v4_compress_step`: the state's kv/score rows live in
    buffers of the state that the kernel writes in place, and the entry of a window it completes goes straight
    into the store's next row."""

    def __init__(self, comp: Compressor) -> None:
        self.m, self.c, self.overlap = comp.ratio, comp.head_dim, comp.overlap
        self.ape, self.norm_weight, self.norm_eps = comp.ape, comp.norm.weight, comp.norm.eps
        self.rope, self.inv_freq = comp.rotary.dim, comp.rotary.inv_freq

    def __call__(self, c, kv: torch.Tensor, score: torch.Tensor, start: int, st: CompressorState, store: GrowBuffer) -> None:
        """The step alone (the layer step runs it inside `v4_layer_step`)."""
        rows, r, prev, has_prev, _, _, row = self.prepare(st, store)
        width = kv.shape[1]
        status = c.v4_compress_step(kv.data_ptr(), score.data_ptr(), self.ape.data_ptr(), self.m, self.c, int(self.overlap),
                                    start, rows, rows + self.m * width * F32, r, prev,
                                    None if prev is None else prev + self.m * self.c * F32, has_prev,
                                    self.norm_weight.data_ptr(), self.norm_eps, self.rope, self.inv_freq.data_ptr(), row)
        if status == 2:
            raise ValueError(f"rotary width {self.rope} is not supported by the V4 kernels")
        self.finish(st, store, status == 1)

    def prepare(self, st: CompressorState, store: GrowBuffer) -> tuple:
        """The state in buffers the kernel may write, and the store's next row: (rows, r, prev, has_prev, store,
        its rows, next row) as `v4_layer_step` takes them."""
        m, half, width = self.m, self.c, self.ape.shape[1]
        r = 0 if st.kv is None else st.kv.shape[0]
        if not st.owns_rows():  # the torch path (a prefill chunk) left tensors of its own: continue in a buffer
            rows = torch.empty(2, m, width)
            if r:
                rows[0, :r], rows[1, :r] = st.kv, st.score
            st.rows, st.row_views = rows, {}
        if self.overlap:
            if not st.owns_prev():
                st.prev = torch.empty(2, m, half)
                if st.prev_kv is not None:
                    st.prev[0], st.prev[1] = st.prev_kv, st.prev_score
                st.prev_views = tuple(st.prev)
        row = store.next_row_ptr()  # first: it may move the store's rows
        prev = st.prev.data_ptr() if self.overlap else None
        return st.rows.data_ptr(), r, prev, int(st.prev_kv is not None), store.data.data_ptr(), store.n, row

    def finish(self, st: CompressorState, store: GrowBuffer, completed: bool) -> None:
        r = 0 if st.kv is None else st.kv.shape[0]
        if completed:  # a window completed: its entry is the store's next row, the state starts again
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
