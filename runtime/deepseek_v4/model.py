"""DeepSeek-V4 (Flash / Pro) for the in-process runtime.

One conversation, tokens as a flat (T,) sequence, activations in fp32. Parameters carry the official
native names (`embed`, `layers.N.attn.wq_a`, `layers.N.ffn.experts.w1` stacked over experts, ...), so
the official checkpoint layout maps onto them directly; `runtime.deepseek_v4.checkpoint` renames the
transformers layout. The cache (`V4Cache`) holds, per layer, the raw-KV window, the compressed entries,
the indexer keys and the compressors' partial-window states, so prefill can be split into chunks of any
size after a cache exists and decode is the one-token case of the same code.

Numerics: `exact` computes with the dequantised weights and no rounding simulation (the oracle mode);
`official` adds the reference's FP8 activation quantisation in GEMMs, the FP8 round trip of the KV
non-RoPE dims (blocks of 64) and the Hadamard + FP4 round trip in the indexer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .cache import V4Cache, V4LayerCache
from .attention import SparseAttention, Compressor, Indexer
from ..layers.norm import RMSNorm
from .common import PackableLinear, stable_topk
from .mhc import HyperConnection, collapse_streams
from .moe import Experts, MoE, SharedExpert
from .one_token import KernelHead, OneTokenLayer
from .v4_kernels import int8_rows, v4_kernels
from .weights import PACKED_FORMATS, PackedWeight, head_logits
from .config import DeepseekV4Config

__all__ = ["DeepseekV4ForCausalLM", "Block", "stable_topk"]


class Block(nn.Module):
    def __init__(self, cfg: DeepseekV4Config, layer: int) -> None:
        super().__init__()
        self.layer = layer
        self.attn_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.ffn_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.attn = SparseAttention(cfg, layer)
        self.ffn = MoE(cfg, layer)
        self.hc_attn = HyperConnection(cfg, "attn")
        self.hc_ffn = HyperConnection(cfg, "ffn")
        self.one_token: OneTokenLayer | None = None  # the int8 decode step through C kernels, once packed

    def forward(self, h: torch.Tensor, ids: torch.Tensor, start: int, lc: V4LayerCache) -> torch.Tensor:
        if self.one_token is not None and h.shape[0] == 1 and OneTokenLayer.applies(lc):
            return self.one_token(h, ids, start, lc)
        y, post, comb = self.hc_attn.pre(h)
        h = self.hc_attn.post(self.attn(self.attn_norm(y), start, lc), h, post, comb)
        y, post, comb = self.hc_ffn.pre(h)
        return self.hc_ffn.post(self.ffn(self.ffn_norm(y), ids), h, post, comb)


class MTPBlock(Block):
    """One multi-token-prediction depth (`mtp.N.*`): from the backbone's final streams at position i and the
    embedding of token i+1 it predicts token i+2, for speculative decoding. A sliding-window, learned-routing
    block with its own `hc_head` and norm; the embedding and LM head are the model's."""

    def __init__(self, cfg: DeepseekV4Config, layer: int) -> None:
        super().__init__(cfg, layer)
        d, hc = cfg.hidden_size, cfg.hc_mult
        self.enorm = RMSNorm(d, cfg.rms_norm_eps)
        self.hnorm = RMSNorm(d, cfg.rms_norm_eps)
        self.e_proj = PackableLinear(d, d)
        self.h_proj = PackableLinear(d, d)
        self.norm = RMSNorm(d, cfg.rms_norm_eps)
        self.hc_head_fn = nn.Parameter(torch.zeros(hc, hc * d))
        self.hc_head_base = nn.Parameter(torch.zeros(hc))
        self.hc_head_scale = nn.Parameter(torch.zeros(1))
        self.cfg = cfg

    def predict(self, h: torch.Tensor, next_embed: torch.Tensor, next_ids: torch.Tensor, start: int,
                lc: V4LayerCache) -> torch.Tensor:
        """h (S, hc, d) backbone streams of positions start.., next_embed (S, d) embeddings of the tokens that
        follow them -> (S, d) normed hidden state whose logits predict the token after those."""
        x = self.e_proj(self.enorm(next_embed))[:, None, :] + self.h_proj(self.hnorm(h))  # (S, hc, d)
        x = self(x, next_ids, start, lc)
        cfg = self.cfg
        return self.norm(collapse_streams(x, self.hc_head_fn, self.hc_head_base, self.hc_head_scale,
                                          cfg.rms_norm_eps, cfg.hc_eps))


class DeepseekV4ForCausalLM(nn.Module):
    def __init__(self, cfg: DeepseekV4Config) -> None:
        super().__init__()
        self.config = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.num_layers))
        self.mtp = nn.ModuleList(MTPBlock(cfg, cfg.num_layers + i) for i in range(cfg.num_mtp_layers))
        self.mtp_loaded = False  # set by the loader when the checkpoint carries the MTP weights
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        hc, d = cfg.hc_mult, cfg.hidden_size
        self.hc_head_fn = nn.Parameter(torch.zeros(hc, hc * d))
        self.hc_head_base = nn.Parameter(torch.zeros(hc))
        self.hc_head_scale = nn.Parameter(torch.zeros(1))
        self.head_packed: PackedWeight | None = None
        self.head_rows: PackedWeight | None = None
        self.kernel_head: KernelHead | None = None  # the int8 head of one-token steps through the kernels
        self.weight_format = "fp32"
        self.set_numerics(cfg.numerics)

    @torch.no_grad()
    def pack_weights(self, fmt: str) -> None:
        """Replace the fp32 projections, experts and LM head with `fmt` copies (after loading; not undone).
        Norms, mHC, gates, sinks and the embedding stay fp32. The LM head's best candidates are
        recomputed in fp32 from dequantised rows (int8 rows kept beside an int4 head)."""
        if fmt == "fp32":
            return
        if fmt not in PACKED_FORMATS:
            raise ValueError(f"weights must be fp32 or one of {PACKED_FORMATS}, not {fmt!r}")
        if self.config.numerics != "exact":
            raise ValueError("packed weights need exact numerics: official numerics simulates the reference's "
                             "FP8 GEMMs on the checkpoint's own weights, which packing would requantise")
        if self.weight_format != "fp32":
            raise ValueError(f"weights are already packed as {self.weight_format}")
        for m in self.modules():
            if isinstance(m, (SparseAttention, Experts, SharedExpert)):
                m.pack(fmt)  # each packs its own projections (fused where they read the same input)
        self.head_packed = PackedWeight(self.head.weight, fmt)
        if fmt == "int4":  # the int4 layout cannot give rows back: int8 rows refine its best candidates
            self.head_rows = PackedWeight(self.head.weight, "int8")
        self.head.weight = nn.Parameter(torch.empty(0), requires_grad=False)
        self.weight_format = fmt
        self.use_decode_kernels(True)

    def use_decode_kernels(self, on: bool) -> bool:
        """Run one-token steps of an int8 model on the CPU through the C kernels of `one_token` (on after
        `pack_weights("int8")` where they build) or through the torch ops; returns whether they are on."""
        blocks = list(self.layers) + list(self.mtp)
        wanted = on and self.weight_format == "int8" and all(map(OneTokenLayer.supports, blocks)) and int8_rows(self.head_packed)
        kernels = v4_kernels() if wanted else None
        for block in blocks:
            block.one_token = None if kernels is None else OneTokenLayer(block, kernels)
        self.kernel_head = None if kernels is None else KernelHead(self, kernels)
        return kernels is not None

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(T, d) -> (T, V) float32 through the LM head."""
        if x.shape[0] == 1 and self.kernel_head is not None:
            return self.kernel_head.logits(x)
        if self.head_packed is not None:
            return head_logits(self.head_packed, x, self.head_rows.rows if self.head_rows else None)
        return F.linear(x, self.head.weight)

    def set_numerics(self, mode: str) -> None:
        if mode not in ("exact", "official"):
            raise ValueError(f"numerics must be 'exact' or 'official', not {mode!r}")
        if mode == "official" and self.weight_format != "fp32":
            raise ValueError(f"official numerics needs the checkpoint's weights, not a {self.weight_format} copy")
        self.config.numerics = mode
        for m in self.modules():
            if isinstance(m, (Compressor, Indexer)):
                m.numerics = mode
        # FP8/FP4 weights of the official checkpoint (wo_a is kept in bf16 by the reference: no act quant)
        quant_names = ("wq_a", "wq_b", "wkv", "wo_b", "w1", "w2", "w3", "e_proj", "h_proj")
        for name, m in self.named_modules():
            if isinstance(m, PackableLinear) and name.rsplit(".", 1)[-1] in quant_names and ".compressor." not in name:
                m.quant_act = mode == "official"
            if isinstance(m, Experts):
                m.quant_act = mode == "official"

    # Everything that reads or writes a cache runs in inference mode (~7% faster decode than no_grad, and a
    # cache's tensors may only be updated in the mode that made them).
    def new_cache(self) -> V4Cache:
        return V4Cache(self.config, device=self.embed.weight.device)

    @torch.inference_mode()
    def hidden_streams(self, ids: torch.Tensor, cache: V4Cache) -> torch.Tensor:
        start = cache.length
        h = self.embed(ids)
        h = h[:, None, :].expand(-1, self.config.hc_mult, -1).contiguous()  # (T, hc, d)
        for block, lc in zip(self.layers, cache.layers):
            h = block(h, ids, start, lc)
        cache.length = start + ids.shape[0]
        return h

    def collapse(self, h: torch.Tensor) -> torch.Tensor:
        """The final mHC head: (T, hc, d) streams -> (T, d) normed hidden state."""
        cfg = self.config
        return self.norm(collapse_streams(h, self.hc_head_fn, self.hc_head_base, self.hc_head_scale, cfg.rms_norm_eps, cfg.hc_eps))

    @torch.inference_mode()
    def forward(self, ids: torch.Tensor, cache: V4Cache | None = None, *, chunk: int | None = None) -> torch.Tensor:
        """ids (T,) continuing `cache` (a fresh one when None) -> logits (T, V) in float32.
        `chunk` splits a long prefill into pieces of that many tokens (same result, less memory)."""
        cache = cache if cache is not None else self.new_cache()
        outs = []
        step = chunk or ids.shape[0]
        for i in range(0, ids.shape[0], step):
            h = self.hidden_streams(ids[i:i + step], cache)
            outs.append(self.logits(self.collapse(h)))
        return torch.cat(outs)

    @torch.inference_mode()
    def mtp_logits(self, h: torch.Tensor, next_ids: torch.Tensor, start: int, cache: V4Cache, depth: int = 0) -> torch.Tensor:
        """Draft logits of MTP depth `depth`: h (S, hc, d) = `hidden_streams` of positions start..start+S-1,
        next_ids (S,) the tokens at start+1..start+S -> (S, V) logits for the tokens at start+2..start+S+1.
        The MTP block keeps its own window and compressor state in `cache.mtp[depth]`."""
        block = self.mtp[depth]
        return self.logits(block.predict(h, self.embed(next_ids), next_ids, start, cache.mtp[depth]))

    @torch.inference_mode()
    def last_logits(self, ids: torch.Tensor, cache: V4Cache, *, chunk: int | None = None) -> torch.Tensor:
        """Like forward but only the last position's logits (V,): what prefill and decode need."""
        step = chunk or ids.shape[0]
        h = None
        for i in range(0, ids.shape[0], step):
            h = self.hidden_streams(ids[i:i + step], cache)
        if self.kernel_head is not None:  # the final mHC head and norm of one row through the kernels too
            return self.kernel_head.logits(self.kernel_head.collapse(h[-1:]))[0]
        return self.logits(self.collapse(h[-1:]))[0]
