"""DeepSeek-V4 attention: q-LoRA with per-head RMS norm, one shared K=V head, interleaved RoPE on the
trailing dims (inverse RoPE on the output), a per-head sink, a grouped low-rank output projection, and the
three layer kinds: sliding window only (ratio 0), CSA (ratio 4: overlapping gated compression plus the
lightning indexer's top-k) and HCA (ratio 128: dense attention over compressed entries).

Every projection that reads the layer input x is independent, so packed (fast) weights fuse them into one
matrix: a decode step then reads them in one pass instead of seven.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .cache import CompressorState, V4LayerCache
from .kv_tiers import selected_rows
from .config import DeepseekV4Config
from . import numerics as qn
from ..layers.norm import RMSNorm
from .common import PackableLinear, Rotary, rms_unweighted, stable_topk
from .weights import PackedWeight
from ...kernels import dispatch


class Compressor(nn.Module):
    """Gated per-channel softmax pooling of `ratio` tokens into one entry (`ratio == 4`: overlapping
    windows of 8 slots, stride 4), then RMSNorm and RoPE at the window's first position."""

    def __init__(self, cfg: DeepseekV4Config, ratio: int, head_dim: int, rotary: Rotary, rotate: bool) -> None:
        super().__init__()
        self.ratio, self.head_dim = ratio, head_dim
        self.overlap = ratio == 4
        coff = 2 if self.overlap else 1
        self.wkv = PackableLinear(cfg.hidden_size, coff * head_dim)
        self.wgate = PackableLinear(cfg.hidden_size, coff * head_dim)
        self.ape = nn.Parameter(torch.zeros(ratio, coff * head_dim))
        self.norm = RMSNorm(head_dim, cfg.rms_norm_eps)
        self.rotary = rotary
        self.rotate = rotate  # indexer compressor: Hadamard + FP4 sim in official numerics
        self.numerics = cfg.numerics

    def forward(self, kv: torch.Tensor, score: torch.Tensor, start: int, state: CompressorState) -> torch.Tensor:
        """kv, score (S, coff*c): the projected rows of positions start..start+S-1 -> the new entries
        (n, head_dim) this chunk completes."""
        m, c = self.ratio, self.head_dim
        S = kv.shape[0]
        score = score + (self.ape[start % m] if S == 1 else self.ape[torch.arange(start, start + S, device=kv.device) % m])
        kv = torch.cat((state.kv, kv)) if state.kv is not None else kv
        score = torch.cat((state.score, score)) if state.score is not None else score
        first = start - (0 if state.kv is None else state.kv.shape[0])  # position of kv[0]; a window start
        n = kv.shape[0] // m
        if n == 0:  # the window is still filling (most decode steps)
            state.kv, state.score = kv, score
            return kv.new_zeros(0, c)
        state.kv, state.score = (kv[n * m:], score[n * m:]) if kv.shape[0] > n * m else (None, None)
        if dispatch.use_triton(kv):
            pooled = self.pool_kernel(kv[: n * m], score[: n * m], state)
            return self.finish(pooled, n, first)
        kv, score = kv[: n * m].view(n, m, -1), score[: n * m].view(n, m, -1)
        if self.overlap:
            # entry w pools the first half (Ca) of window w-1 and the second half (Cb) of window w
            prev_kv = kv.new_zeros(n, m, c)
            prev_score = score.new_full((n, m, c), float("-inf"))
            if n > 1:
                prev_kv[1:], prev_score[1:] = kv[:-1, :, :c], score[:-1, :, :c]
            if state.prev_kv is not None:
                prev_kv[0], prev_score[0] = state.prev_kv, state.prev_score
            state.prev_kv, state.prev_score = kv[-1, :, :c].clone(), score[-1, :, :c].clone()
            kv = torch.cat((prev_kv, kv[:, :, c:]), dim=1)
            score = torch.cat((prev_score, score[:, :, c:]), dim=1)
        pooled = (kv * score.softmax(dim=1)).sum(dim=1)  # (n, c)
        return self.finish(pooled, n, first)

    def pool_kernel(self, kv: torch.Tensor, score: torch.Tensor, state: CompressorState) -> torch.Tensor:
        """The pooling through the dispatcher (CUDA): complete windows' rows (n*m, coff*c), scores biased."""
        m, c = self.ratio, self.head_dim
        prev = (state.prev_kv, state.prev_score) if self.overlap else (None, None)
        if self.overlap:
            state.prev_kv, state.prev_score = kv[-m:, :c].clone(), score[-m:, :c].clone()
        return dispatch.compressor_pool(kv.contiguous(), score.contiguous(), None, *prev, m)

    def finish(self, pooled: torch.Tensor, n: int, first: int) -> torch.Tensor:
        """RMSNorm and RoPE at each window's first position (and the official numerics' rounding)."""
        out = self.rotary.apply(self.norm(pooled), self.rotary.phases(torch.arange(n, device=pooled.device) * self.ratio + first))
        if self.numerics == "official":
            if self.rotate:
                out = qn.fp4_act_roundtrip(qn.hadamard(out), 32)
            else:
                out = qn.kv_fp8_roundtrip(out, self.rotary.dim)
        return out


class Indexer(nn.Module):
    """Lightning indexer: picks the top `index_topk` visible compressed entries for each query."""

    def __init__(self, cfg: DeepseekV4Config, rotary: Rotary) -> None:
        super().__init__()
        self.n_heads, self.head_dim, self.topk = cfg.index_n_heads, cfg.index_head_dim, cfg.index_topk
        self.wq_b = PackableLinear(cfg.q_lora_rank, cfg.index_n_heads * cfg.index_head_dim)
        self.weights_proj = PackableLinear(cfg.hidden_size, cfg.index_n_heads)
        self.compressor = Compressor(cfg, 4, cfg.index_head_dim, rotary, rotate=True)
        self.rotary = rotary
        self.numerics = cfg.numerics

    def forward(self, qr: torch.Tensor, head_w: torch.Tensor, phases, positions, keys: torch.Tensor) -> torch.Tensor:
        """qr (S, q_lora), head_w = weights_proj(x) (S, n_heads) -> (S, k) indices into `keys`, -1 where
        fewer than k entries are visible."""
        S = qr.shape[0]
        q = self.wq_b(qr).view(S, self.n_heads, self.head_dim)
        q = self.rotary.apply(q, phases)
        if self.numerics == "official":
            q = qn.fp4_act_roundtrip(qn.hadamard(q), 32)
        w = head_w * (self.head_dim ** -0.5 * self.n_heads ** -0.5)
        n = keys.shape[0]
        k = min(self.topk, n)
        if k == 0:
            return torch.full((S, 0), -1, dtype=torch.long, device=qr.device)
        if dispatch.use_triton(q):  # scores and the exact tie rule in one kernel; one query sees every key
            return dispatch.indexer_topk(q.contiguous(), keys.contiguous(), w.contiguous(), k, positions, causal=S > 1)
        score = torch.bmm(w[:, None, :], (q @ keys.T).relu())[:, 0]  # (S, n)
        if S == 1:  # one query sees every stored key: keys are only stored once their window is complete
            return stable_topk(score, k)
        visible = torch.arange(n, device=keys.device)[None, :] < ((positions + 1) // 4)[:, None]
        idx = stable_topk(score.masked_fill(~visible, float("-inf")), k)
        return torch.where(torch.gather(visible, 1, idx), idx, torch.full_like(idx, -1))


class SparseAttention(nn.Module):
    def __init__(self, cfg: DeepseekV4Config, layer: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.ratio = cfg.compress_ratios[layer] if layer < cfg.num_layers else cfg.mtp_compress_ratios[layer - cfg.num_layers]
        H, D, d = cfg.num_heads, cfg.head_dim, cfg.hidden_size
        self.n_heads, self.head_dim, self.window = H, D, cfg.window
        self.wq_a = PackableLinear(d, cfg.q_lora_rank)
        self.q_norm = RMSNorm(cfg.q_lora_rank, cfg.rms_norm_eps)
        self.wq_b = PackableLinear(cfg.q_lora_rank, H * D)
        self.wkv = PackableLinear(d, D)
        self.kv_norm = RMSNorm(D, cfg.rms_norm_eps)
        self.wo_a = PackableLinear(H * D // cfg.o_groups, cfg.o_groups * cfg.o_lora_rank)
        self.wo_b = PackableLinear(cfg.o_groups * cfg.o_lora_rank, d)
        self.attn_sink = nn.Parameter(torch.zeros(H))
        if self.ratio:
            self.rotary = Rotary(cfg.rope_head_dim, cfg.compress_rope_theta, cfg)
            self.compressor = Compressor(cfg, self.ratio, D, self.rotary, rotate=False)
            if self.ratio == 4:
                self.indexer = Indexer(cfg, self.rotary)
        else:
            self.rotary = Rotary(cfg.rope_head_dim, cfg.rope_theta)
        self.scale = D ** -0.5
        self.wo_a_groups: list[PackedWeight] = []  # wo_a per output group once packed
        self.x_proj: PackedWeight | None = None  # every projection of x, fused, once packed
        self.x_split: list[int] = []  # output widths of the fused projections

    def x_projections(self) -> list[PackableLinear]:
        """The projections that read the layer input, in the order `project` returns them."""
        out = [self.wq_a, self.wkv]
        if self.ratio:
            out += [self.compressor.wkv, self.compressor.wgate]
        if self.ratio == 4:
            out += [self.indexer.compressor.wkv, self.indexer.compressor.wgate, self.indexer.weights_proj]
        return out

    def pack(self, fmt: str) -> None:
        parts = self.x_projections()
        self.x_proj = PackedWeight(torch.cat([p.weight for p in parts]), fmt)
        self.x_split = [p.out_features for p in parts]
        for p in parts:
            p.release()
        G = self.cfg.o_groups
        self.wo_a_groups = [PackedWeight(w, fmt) for w in self.wo_a.weight.view(G, self.cfg.o_lora_rank, -1)]
        self.wo_a.release()
        for p in (self.wq_b, self.wo_b) + ((self.indexer.wq_b,) if self.ratio == 4 else ()):
            p.pack(fmt)

    def project(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.x_proj is not None:
            return list(self.x_proj(x).split(self.x_split, dim=-1))
        return [p(x) for p in self.x_projections()]

    def forward(self, x: torch.Tensor, start: int, lc: V4LayerCache) -> torch.Tensor:
        cfg = self.cfg
        S, H, D = x.shape[0], self.n_heads, self.head_dim
        positions = torch.arange(start, start + S, device=x.device)
        phases = self.rotary.phases(positions)
        proj = self.project(x)
        qr = self.q_norm(proj[0])
        q = rms_unweighted(self.wq_b(qr).view(S, H, D), cfg.rms_norm_eps)
        q = self.rotary.apply(q, phases)  # (S, H, D)
        kv = self.rotary.apply(self.kv_norm(proj[1]), phases)  # (S, D)
        if cfg.numerics == "official":
            kv = qn.kv_fp8_roundtrip(kv, self.rotary.dim)

        # window part: the previous tail of raw KV plus this chunk; keys[i] is the KV of position first + i
        tail_kv, tail_start = lc.window_kv(self.window)
        if S == 1 and tail_kv is not None:  # the single query sees exactly the last window-1 cached keys
            keys = torch.cat((tail_kv[max(0, tail_kv.shape[0] - self.window + 1):], kv))
        else:
            keys = torch.cat((tail_kv, kv)) if tail_kv is not None else kv
        first = start + S - keys.shape[0]
        lc.push_window(kv, start, self.window)
        comp = comp_mask = None
        if self.ratio:
            comp = lc.append_compressed(self.compressor(proj[2], proj[3], start, lc.comp_state))
            if self.ratio == 4:
                index_keys = lc.append_index_keys(self.indexer.compressor(proj[4], proj[5], start, lc.index_state))
                idx = self.indexer(qr, proj[6], phases, positions, index_keys)  # (S, k)
                if dispatch.use_triton(q):
                    comp, idx, warm = selected_rows(comp, idx, decode=S == 1)  # with a warm tier (kv_tiers.py)
                    return self.wo_b(self.output_groups(self.rotary.apply(
                        self.attend_kernel(q, keys, first, positions, comp, idx, warm), phases, inverse=True)))
                comp = comp[idx.clamp(min=0)]  # (S, k, D) the entries each query selected
                comp_mask = idx >= 0 if S > 1 else None
            elif S > 1:  # a single query sees every stored entry: entries are stored once complete
                comp_mask = torch.arange(comp.shape[0], device=x.device)[None, :] < ((positions + 1) // self.ratio)[:, None]
        if dispatch.use_triton(q):
            o = self.attend_kernel(q, keys, first, positions, comp, None)
        elif S == 1:
            o = self.attend(q, keys, None, comp, None)
        else:
            # query blocks of one window: each reads only the keys its window can reach (2 windows wide)
            # instead of every query scoring the whole chunk
            block = self.window if S > 2 * self.window else S
            outs = []
            for b0 in range(0, S, block):
                b1 = min(S, b0 + block)
                lo, hi = max(0, start + b0 - self.window + 1 - first), start + b1 - first
                qpos, kpos = positions[b0:b1, None], torch.arange(first + lo, first + hi, device=x.device)[None, :]
                win_mask = (kpos <= qpos) & (kpos > qpos - self.window)  # (s, n)
                comp_b = None if comp is None else comp[b0:b1] if comp.dim() == 3 else comp
                outs.append(self.attend(q[b0:b1], keys[lo:hi], win_mask, comp_b,
                                        None if comp_mask is None else comp_mask[b0:b1]))
            o = torch.cat(outs)
        o = self.rotary.apply(o, phases, inverse=True)
        return self.wo_b(self.output_groups(o))

    def attend_kernel(self, q: torch.Tensor, keys: torch.Tensor, first: int, positions: torch.Tensor,
                      comp: torch.Tensor | None, comp_idx: torch.Tensor | None, warm=None) -> torch.Tensor:
        """`attend` through the sparse-attention kernel (CUDA): every query's candidates listed as rows of the
        window keys (position first + i) and then of the compressed store, read in place. Query p sees the
        keys of (p - window, p], the CSA entries its indexer chose (`comp_idx`) or, for HCA, the entries whose
        window is complete at p."""
        S, dev = q.shape[0], q.device
        nk = keys.shape[0]
        win = min(self.window, nk)
        rel = (positions - first)[:, None] - torch.arange(win - 1, -1, -1, device=dev)[None, :]  # (S, win) key rows
        visible = (rel >= 0) & (rel < nk) & (rel > (positions - first)[:, None] - self.window)
        parts = [torch.where(visible, rel, -1)]
        if comp is not None and comp_idx is not None:  # CSA: the indexer's choice, -1 kept
            parts.append(torch.where(comp_idx >= 0, comp_idx + nk, -1))
        elif comp is not None and comp.shape[0]:  # HCA: the complete entries
            ent = torch.arange(comp.shape[0], device=dev)[None, :]
            parts.append(torch.where(ent < ((positions + 1) // self.ratio)[:, None], ent + nk, -1))
        idx = torch.cat(parts, dim=1).to(torch.int32).contiguous()
        pool = comp if comp is not None and comp.shape[0] else None
        return dispatch.sparse_attention(q.contiguous(), keys.contiguous(), idx, self.attn_sink.detach().float(),
                                         self.scale, comp=pool, warm=warm)

    def attend(self, q: torch.Tensor, keys: torch.Tensor, win_mask: torch.Tensor | None, comp: torch.Tensor | None,
               comp_mask: torch.Tensor | None) -> torch.Tensor:
        """One softmax over the window keys (n, D), the compressed entries (per query (s, k, D) for CSA, shared
        (m, D) for HCA) and the sink, for queries q (s, H, D) -> (s, H, D). K = V: the keys are the values."""
        s, H = q.shape[:2]
        win = q @ keys.T * self.scale  # (s, H, n)
        if win_mask is not None:
            win = win.masked_fill(~win_mask[:, None, :], float("-inf"))
        parts = [win]
        if comp is not None:
            cs = (torch.bmm(q, comp.transpose(1, 2)) if comp.dim() == 3 else q @ comp.T) * self.scale  # (s, H, k|m)
            if comp_mask is not None:
                cs = cs.masked_fill(~comp_mask[:, None, :], float("-inf"))
            parts.append(cs)
        parts.append(self.attn_sink.view(1, H, 1).expand(s, H, 1))
        probs = torch.cat(parts, dim=-1).softmax(-1)
        nw = keys.shape[0]
        o = probs[..., :nw] @ keys
        if comp is not None:
            o = o + (torch.bmm(probs[..., nw:-1], comp) if comp.dim() == 3 else probs[..., nw:-1] @ comp)
        return o

    def output_groups(self, o: torch.Tensor) -> torch.Tensor:
        """(S, H, D) -> (S, G * o_lora): each group of heads through its own block of wo_a."""
        S, G, R = o.shape[0], self.cfg.o_groups, self.cfg.o_lora_rank
        o = o.reshape(S, G, -1)
        if self.wo_a.quant_act:
            o = qn.fp8_act_roundtrip(o, 128)
        if self.wo_a_groups:
            return torch.cat([p(o[:, g]) for g, p in enumerate(self.wo_a_groups)], dim=-1)
        return torch.einsum("sgi,gri->sgr", o, self.wo_a.weight.view(G, R, -1)).reshape(S, G * R)
