"""DeepSeek-V4 (Flash / Pro) for the in-process runtime.

One conversation, tokens as a flat (T,) sequence, fp32 by default. Parameters carry the official
native names (`embed`, `layers.N.attn.wq_a`, `layers.N.ffn.experts.w1` stacked over experts, ...), so
the official checkpoint layout maps onto them directly; `runtime.loaders.v4_checkpoint` renames the
transformers layout. The cache (`V4Cache`) holds, per layer, the raw-KV window, the compressed entries,
the indexer keys and the compressors' partial-window states, so prefill can be split into chunks of any
size after a cache exists and decode is the one-token case of the same code.

Numerics: `exact` computes with the dequantised weights and no rounding simulation (the oracle mode);
`official` adds the reference's FP8 activation quantisation in GEMMs, the FP8 round trip of the KV
non-RoPE dims (blocks of 64) and the Hadamard + FP4 round trip in the indexer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..engine.v4_cache import CompressorState, V4Cache, V4LayerCache
from ..layers import v4_numerics as qn
from ..v4_config import DeepseekV4Config, yarn_low_high


def stable_topk(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k largest scores along the last dim; ties go to the lower index (deterministic)."""
    if k <= 0:
        return scores.new_zeros(scores.shape[:-1] + (0,), dtype=torch.long)
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices
    return order[..., :k]


def rms_unweighted(x: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (rms_unweighted(xf, self.eps) * self.weight.float()).to(x.dtype)


class Linear(nn.Module):
    """y = x W^T with W (out, in). In `official` numerics the activation goes through the FP8 act-quant
    simulation first (1x128 blocks, power-of-two scales) when the weight was FP8/FP4 in the checkpoint."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(out_features, in_features))
        self.quant_act = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.quant_act:
            x = qn.fp8_act_roundtrip(x, 128)
        return F.linear(x, self.weight)


class Rotary:
    """Interleaved RoPE on the trailing `dim` channels: pairs (2i, 2i+1) rotate by pos * inv_freq[i]."""

    def __init__(self, dim: int, base: float, cfg: DeepseekV4Config | None = None) -> None:
        inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
        if cfg is not None and cfg.yarn.original_max_position > 0 and cfg.yarn.factor != 1.0:
            low, high = yarn_low_high(cfg, base)
            if low == high:
                high += 0.001
            ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
            smooth = 1 - ramp
            inv = inv / cfg.yarn.factor * (1 - smooth) + inv * smooth
        self.inv_freq = inv
        self.dim = dim

    def cos_sin(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ang = positions.float()[:, None] * self.inv_freq[None, :]
        return ang.cos(), ang.sin()

    def apply(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        """x (T, ..., D); cos/sin (T, dim/2) broadcast over the middle dims."""
        r = self.dim
        head, tail = x[..., :-r], x[..., -r:].float()
        shape = (cos.shape[0],) + (1,) * (x.dim() - 2) + (r // 2,)
        c, s = cos.view(shape), sin.view(shape)
        if inverse:
            s = -s
        x0, x1 = tail[..., 0::2], tail[..., 1::2]
        rot = torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2)
        return torch.cat((head, rot.to(x.dtype)), dim=-1)


class Compressor(nn.Module):
    """Gated per-channel softmax pooling of `ratio` tokens into one entry (`ratio == 4`: overlapping
    windows of 8 slots, stride 4), then RMSNorm and RoPE at the window's first position."""

    def __init__(self, cfg: DeepseekV4Config, ratio: int, head_dim: int, rotary: Rotary, rotate: bool) -> None:
        super().__init__()
        self.ratio, self.head_dim = ratio, head_dim
        self.overlap = ratio == 4
        coff = 2 if self.overlap else 1
        self.wkv = Linear(cfg.hidden_size, coff * head_dim)
        self.wgate = Linear(cfg.hidden_size, coff * head_dim)
        self.ape = nn.Parameter(torch.zeros(ratio, coff * head_dim))
        self.norm = RMSNorm(head_dim, cfg.rms_norm_eps)
        self.rotary = rotary
        self.rotate = rotate  # indexer compressor: Hadamard + FP4 sim in official numerics
        self.numerics = cfg.numerics

    def forward(self, x: torch.Tensor, start: int, state: CompressorState) -> torch.Tensor:
        """x (S, d) at positions start..start+S-1 -> new entries (n, head_dim) emitted by this chunk."""
        m, c = self.ratio, self.head_dim
        xf = x.float()
        kv = F.linear(xf, self.wkv.weight.float())
        score = F.linear(xf, self.wgate.weight.float())
        pos = torch.arange(start, start + x.shape[0])
        score = score + self.ape.float()[pos % m]
        kv = torch.cat((state.kv, kv)) if state.kv is not None else kv
        score = torch.cat((state.score, score)) if state.score is not None else score
        first = start - (0 if state.kv is None else state.kv.shape[0])  # position of kv[0]; a window start
        n = kv.shape[0] // m
        state.kv, state.score = (kv[n * m:], score[n * m:]) if kv.shape[0] > n * m else (None, None)
        if n == 0:
            return kv.new_zeros(0, c)
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
        out = self.norm(pooled)
        cos, sin = self.rotary.cos_sin(torch.arange(n) * m + first)
        out = self.rotary.apply(out, cos, sin)
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
        self.wq_b = Linear(cfg.q_lora_rank, cfg.index_n_heads * cfg.index_head_dim)
        self.weights_proj = Linear(cfg.hidden_size, cfg.index_n_heads)
        self.compressor = Compressor(cfg, 4, cfg.index_head_dim, rotary, rotate=True)
        self.rotary = rotary
        self.numerics = cfg.numerics

    def forward(self, x, qr, cos, sin, positions, keys: torch.Tensor) -> torch.Tensor:
        """-> (S, k) indices into `keys`, -1 where fewer than k entries are visible."""
        S = x.shape[0]
        q = self.wq_b(qr).float().view(S, self.n_heads, self.head_dim)
        q = self.rotary.apply(q, cos, sin)
        if self.numerics == "official":
            q = qn.fp4_act_roundtrip(qn.hadamard(q), 32)
        w = F.linear(x.float(), self.weights_proj.weight.float()) * (self.head_dim ** -0.5 * self.n_heads ** -0.5)
        n = keys.shape[0]
        k = min(self.topk, n)
        if k == 0:
            return torch.full((S, 0), -1, dtype=torch.long)
        s = torch.einsum("shc,nc->shn", q, keys.float()).relu()
        score = (s * w[:, :, None]).sum(1)  # (S, n)
        visible = torch.arange(n)[None, :] < ((positions + 1) // 4)[:, None]
        score = score.masked_fill(~visible, float("-inf"))
        idx = stable_topk(score, k)
        return torch.where(torch.gather(visible, 1, idx), idx, torch.full_like(idx, -1))


class Attention(nn.Module):
    def __init__(self, cfg: DeepseekV4Config, layer: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.ratio = cfg.compress_ratios[layer] if layer < cfg.num_layers else cfg.mtp_compress_ratios[layer - cfg.num_layers]
        H, D, d = cfg.num_heads, cfg.head_dim, cfg.hidden_size
        self.n_heads, self.head_dim, self.window = H, D, cfg.window
        self.wq_a = Linear(d, cfg.q_lora_rank)
        self.q_norm = RMSNorm(cfg.q_lora_rank, cfg.rms_norm_eps)
        self.wq_b = Linear(cfg.q_lora_rank, H * D)
        self.wkv = Linear(d, D)
        self.kv_norm = RMSNorm(D, cfg.rms_norm_eps)
        self.wo_a = Linear(H * D // cfg.o_groups, cfg.o_groups * cfg.o_lora_rank)
        self.wo_b = Linear(cfg.o_groups * cfg.o_lora_rank, d)
        self.attn_sink = nn.Parameter(torch.zeros(H))
        if self.ratio:
            self.rotary = Rotary(cfg.rope_head_dim, cfg.compress_rope_theta, cfg)
            self.compressor = Compressor(cfg, self.ratio, D, self.rotary, rotate=False)
            if self.ratio == 4:
                self.indexer = Indexer(cfg, self.rotary)
        else:
            self.rotary = Rotary(cfg.rope_head_dim, cfg.rope_theta)
        self.scale = D ** -0.5

    def forward(self, x: torch.Tensor, ids: torch.Tensor, start: int, lc: V4LayerCache) -> torch.Tensor:
        cfg = self.cfg
        S, H, D = x.shape[0], self.n_heads, self.head_dim
        positions = torch.arange(start, start + S)
        cos, sin = self.rotary.cos_sin(positions)
        qr = self.q_norm(self.wq_a(x))
        q = self.wq_b(qr).view(S, H, D)
        q = rms_unweighted(q.float(), cfg.rms_norm_eps).to(x.dtype)
        q = self.rotary.apply(q, cos, sin)
        kv = self.rotary.apply(self.kv_norm(self.wkv(x)), cos, sin)
        if cfg.numerics == "official":
            kv = qn.kv_fp8_roundtrip(kv, self.rotary.dim)

        # window part: the previous tail of raw KV plus this chunk
        tail_kv, tail_start = lc.window_kv(self.window)
        keys = torch.cat((tail_kv, kv)) if tail_kv is not None else kv
        key_pos = torch.arange(tail_start, start + S) if tail_kv is not None else positions
        lc.push_window(kv, start, self.window)
        win_mask = (key_pos[None, :] <= positions[:, None]) & (key_pos[None, :] > positions[:, None] - self.window)
        win_scores = torch.einsum("shd,nd->shn", q.float(), keys.float()) * self.scale
        win_scores = win_scores.masked_fill(~win_mask[:, None, :], float("-inf"))
        parts_s, parts_v = [win_scores], [keys.float()]
        gathered = None
        if self.ratio:
            new = self.compressor(x, start, lc.comp_state)
            comp = lc.append_compressed(new)
            if self.ratio == 4:
                new_keys = self.indexer.compressor(x, start, lc.index_state)
                index_keys = lc.append_index_keys(new_keys)
                idx = self.indexer(x, qr, cos, sin, positions, index_keys)  # (S, k)
                valid = idx >= 0
                gathered = comp.float()[idx.clamp(min=0)]  # (S, k, D)
                cs = torch.einsum("shd,skd->shk", q.float(), gathered) * self.scale
                cs = cs.masked_fill(~valid[:, None, :], float("-inf"))
                parts_s.append(cs)
            else:
                n = comp.shape[0]
                visible = torch.arange(n)[None, :] < ((positions + 1) // self.ratio)[:, None]
                cs = torch.einsum("shd,nd->shn", q.float(), comp.float()) * self.scale
                parts_s.append(cs.masked_fill(~visible[:, None, :], float("-inf")))
                parts_v.append(comp.float())
        sink = self.attn_sink.float().view(1, H, 1).expand(S, H, 1)
        logits = torch.cat(parts_s + [sink], dim=-1)
        probs = logits.softmax(-1)
        nw = parts_s[0].shape[-1]
        o = torch.einsum("shn,nd->shd", probs[..., :nw], parts_v[0])
        if self.ratio == 4:
            o = o + torch.einsum("shk,skd->shd", probs[..., nw:-1], gathered)
        elif self.ratio:
            o = o + torch.einsum("shn,nd->shd", probs[..., nw:-1], parts_v[1])
        o = self.rotary.apply(o.to(x.dtype), cos, sin, inverse=True)
        G = cfg.o_groups
        o = o.reshape(S, G, H * D // G)
        if self.wo_a.quant_act:
            o = qn.fp8_act_roundtrip(o, 128)
        o = torch.einsum("sgi,gri->sgr", o, self.wo_a.weight.view(G, cfg.o_lora_rank, -1))
        return self.wo_b(o.reshape(S, G * cfg.o_lora_rank))


class Gate(nn.Module):
    def __init__(self, cfg: DeepseekV4Config, hashed: bool) -> None:
        super().__init__()
        self.topk, self.scale, self.hashed = cfg.experts_per_token, cfg.routed_scaling_factor, hashed
        self.norm_topk = cfg.norm_topk_prob
        self.func = cfg.scoring_func
        self.weight = nn.Parameter(torch.zeros(cfg.n_routed_experts, cfg.hidden_size))
        if hashed:
            self.register_buffer("tid2eid", torch.zeros(cfg.vocab_size, cfg.experts_per_token, dtype=torch.long))
        else:
            self.register_buffer("bias", torch.zeros(cfg.n_routed_experts))

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = F.linear(x.float(), self.weight.float())
        if self.func == "sqrtsoftplus":
            s = F.softplus(logits).sqrt()
        elif self.func == "sigmoid":
            s = logits.sigmoid()
        else:
            s = logits.softmax(-1)
        if self.hashed:
            idx = self.tid2eid[ids].long()
        else:
            idx = stable_topk(s + self.bias.float(), self.topk)
        w = s.gather(1, idx)
        if self.norm_topk:
            w = w / (w.sum(-1, keepdim=True) + 1e-20)
        return w * self.scale, idx


def clamped_swiglu(g: torch.Tensor, u: torch.Tensor, limit: float) -> torch.Tensor:
    if limit > 0:
        g, u = g.clamp(max=limit), u.clamp(-limit, limit)
    return F.silu(g) * u


class Experts(nn.Module):
    """Routed experts stacked: w1/w3 (E, I, d), w2 (E, d, I)."""

    def __init__(self, cfg: DeepseekV4Config) -> None:
        super().__init__()
        E, I, d = cfg.n_routed_experts, cfg.moe_intermediate_size, cfg.hidden_size
        self.w1 = nn.Parameter(torch.zeros(E, I, d))
        self.w3 = nn.Parameter(torch.zeros(E, I, d))
        self.w2 = nn.Parameter(torch.zeros(E, d, I))
        self.limit = cfg.swiglu_limit
        self.quant_act = False

    def forward(self, x: torch.Tensor, w: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape, dtype=torch.float32)
        flat = idx.flatten()
        order = torch.argsort(flat, stable=True)
        counts = torch.bincount(flat, minlength=self.w1.shape[0]).tolist()
        tok = order // idx.shape[1]
        wts = w.flatten()[order]
        pos = 0
        for e, n in enumerate(counts):
            if n == 0:
                continue
            t = tok[pos:pos + n]
            xe = x[t]
            if self.quant_act:
                xe = qn.fp8_act_roundtrip(xe, 128)
            h = clamped_swiglu(F.linear(xe, self.w1[e]).float(), F.linear(xe, self.w3[e]).float(), self.limit)
            h = h * wts[pos:pos + n, None]
            if self.quant_act:
                h = qn.fp8_act_roundtrip(h, 128)
            out.index_add_(0, t, F.linear(h.to(x.dtype), self.w2[e]).float())
            pos += n
        return out


class SharedExpert(nn.Module):
    def __init__(self, cfg: DeepseekV4Config) -> None:
        super().__init__()
        I, d = cfg.moe_intermediate_size * cfg.n_shared_experts, cfg.hidden_size
        self.w1, self.w3, self.w2 = Linear(d, I), Linear(d, I), Linear(I, d)
        self.limit = cfg.swiglu_limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = clamped_swiglu(self.w1(x).float(), self.w3(x).float(), self.limit)
        return self.w2(h.to(x.dtype)).float()


class MoE(nn.Module):
    def __init__(self, cfg: DeepseekV4Config, layer: int) -> None:
        super().__init__()
        self.gate = Gate(cfg, hashed=layer < cfg.num_hash_layers)
        self.experts = Experts(cfg)
        self.shared_experts = SharedExpert(cfg) if cfg.n_shared_experts else None

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        w, idx = self.gate(x, ids)
        y = self.experts(x, w, idx)
        if self.shared_experts is not None:
            y = y + self.shared_experts(x)
        return y.to(x.dtype)


class HyperConnection(nn.Module):
    """One mHC site: `pre` collapses the streams into the sub-layer input, `post`/`comb` expand it back."""

    def __init__(self, cfg: DeepseekV4Config, prefix: str) -> None:
        super().__init__()
        hc, d = cfg.hc_mult, cfg.hidden_size
        self.hc, self.iters, self.eps, self.norm_eps = hc, cfg.hc_sinkhorn_iters, cfg.hc_eps, cfg.rms_norm_eps
        self.fn = nn.Parameter(torch.zeros((2 + hc) * hc, hc * d))
        self.base = nn.Parameter(torch.zeros((2 + hc) * hc))
        self.scale = nn.Parameter(torch.zeros(3))

    def pre(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hc = self.hc
        xf = h.flatten(1).float()
        mixes = F.linear(rms_unweighted(xf, self.norm_eps), self.fn.float())
        base, scale = self.base.float(), self.scale.float()
        pre = torch.sigmoid(mixes[:, :hc] * scale[0] + base[:hc]) + self.eps
        post = 2 * torch.sigmoid(mixes[:, hc:2 * hc] * scale[1] + base[hc:2 * hc])
        comb = (mixes[:, 2 * hc:] * scale[2] + base[2 * hc:]).view(-1, hc, hc).softmax(-1) + self.eps
        comb = comb / (comb.sum(-2, keepdim=True) + self.eps)
        for _ in range(self.iters - 1):
            comb = comb / (comb.sum(-1, keepdim=True) + self.eps)
            comb = comb / (comb.sum(-2, keepdim=True) + self.eps)
        y = (pre[:, :, None] * h.float()).sum(1).to(h.dtype)
        return y, post, comb

    @staticmethod
    def post(o: torch.Tensor, h: torch.Tensor, post: torch.Tensor, comb: torch.Tensor) -> torch.Tensor:
        # h'_k = post_k * o + sum_j comb[j, k] * h_j
        mixed = torch.einsum("tjk,tjd->tkd", comb, h.float())
        return (post[:, :, None] * o.float()[:, None, :] + mixed).to(h.dtype)


class Block(nn.Module):
    def __init__(self, cfg: DeepseekV4Config, layer: int) -> None:
        super().__init__()
        self.layer = layer
        self.attn_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.ffn_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.attn = Attention(cfg, layer)
        self.ffn = MoE(cfg, layer)
        self.hc_attn = HyperConnection(cfg, "attn")
        self.hc_ffn = HyperConnection(cfg, "ffn")

    def forward(self, h: torch.Tensor, ids: torch.Tensor, start: int, lc: V4LayerCache) -> torch.Tensor:
        y, post, comb = self.hc_attn.pre(h)
        h = self.hc_attn.post(self.attn(self.attn_norm(y), ids, start, lc), h, post, comb)
        y, post, comb = self.hc_ffn.pre(h)
        return self.hc_ffn.post(self.ffn(self.ffn_norm(y), ids), h, post, comb)


class DeepseekV4ForCausalLM(nn.Module):
    def __init__(self, cfg: DeepseekV4Config, *, act_dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.config = cfg
        self.act_dtype = act_dtype
        self.embed = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        hc, d = cfg.hc_mult, cfg.hidden_size
        self.hc_head_fn = nn.Parameter(torch.zeros(hc, hc * d))
        self.hc_head_base = nn.Parameter(torch.zeros(hc))
        self.hc_head_scale = nn.Parameter(torch.zeros(1))
        self.set_numerics(cfg.numerics)

    def set_numerics(self, mode: str) -> None:
        if mode not in ("exact", "official"):
            raise ValueError(f"numerics must be 'exact' or 'official', not {mode!r}")
        self.config.numerics = mode
        for m in self.modules():
            if isinstance(m, (Compressor, Indexer)):
                m.numerics = mode
        # FP8/FP4 weights of the official checkpoint (wo_a is kept in bf16 by the reference: no act quant)
        quant_names = ("wq_a", "wq_b", "wkv", "wo_b", "w1", "w2", "w3")
        for name, m in self.named_modules():
            if isinstance(m, Linear) and name.rsplit(".", 1)[-1] in quant_names and ".compressor." not in name:
                m.quant_act = mode == "official"
            if isinstance(m, Experts):
                m.quant_act = mode == "official"

    def new_cache(self) -> V4Cache:
        return V4Cache(self.config)

    def hidden_streams(self, ids: torch.Tensor, cache: V4Cache) -> torch.Tensor:
        start = cache.length
        h = self.embed(ids).to(self.act_dtype)
        h = h[:, None, :].expand(-1, self.config.hc_mult, -1).contiguous()  # (T, hc, d)
        for block, lc in zip(self.layers, cache.layers):
            h = block(h, ids, start, lc)
        cache.length = start + ids.shape[0]
        return h

    def collapse(self, h: torch.Tensor) -> torch.Tensor:
        xf = h.flatten(1).float()
        mixes = F.linear(rms_unweighted(xf, self.config.rms_norm_eps), self.hc_head_fn.float())
        pre = torch.sigmoid(mixes * self.hc_head_scale.float() + self.hc_head_base.float()) + self.config.hc_eps
        return self.norm((pre[:, :, None] * h.float()).sum(1).to(h.dtype))

    @torch.no_grad()
    def forward(self, ids: torch.Tensor, cache: V4Cache | None = None, *, chunk: int | None = None) -> torch.Tensor:
        """ids (T,) continuing `cache` (a fresh one when None) -> logits (T, V) in float32.
        `chunk` splits a long prefill into pieces of that many tokens (same result, less memory)."""
        cache = cache if cache is not None else self.new_cache()
        outs = []
        step = chunk or ids.shape[0]
        for i in range(0, ids.shape[0], step):
            h = self.hidden_streams(ids[i:i + step], cache)
            outs.append(F.linear(self.collapse(h).float(), self.head.weight.float()))
        return torch.cat(outs)

    @torch.no_grad()
    def last_logits(self, ids: torch.Tensor, cache: V4Cache, *, chunk: int | None = None) -> torch.Tensor:
        """Like forward but only the last position's logits (V,): what prefill and decode need."""
        step = chunk or ids.shape[0]
        h = None
        for i in range(0, ids.shape[0], step):
            h = self.hidden_streams(ids[i:i + step], cache)
        return F.linear(self.collapse(h[-1:]).float(), self.head.weight.float())[0]
