"""DeepSeek-V4 config: parsed from the HF `config.json` (legacy keys as shipped with V4-Flash/Pro, or the
renamed keys that transformers >= 5.8 writes), or from the official `inference/config.json`.

Torch-free. Refuses the later dialects (Flash-0731 / DSpark heads, V4.1 Engram) with a clear message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadModelFile

LAYER_KIND = {0: "sliding", 4: "csa", 128: "hca"}


@dataclass(slots=True)
class V4Yarn:
    factor: float = 1.0
    original_max_position: int = 0  # 0: YaRN off
    beta_fast: float = 32.0
    beta_slow: float = 1.0


@dataclass(slots=True)
class DeepseekV4Config:
    architecture: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    head_dim: int
    rope_head_dim: int
    q_lora_rank: int
    o_groups: int
    o_lora_rank: int
    window: int
    compress_ratios: tuple[int, ...]  # backbone layers only (the MTP entries are in mtp_compress_ratios)
    moe_intermediate_size: int
    n_routed_experts: int
    n_shared_experts: int
    experts_per_token: int
    num_hash_layers: int
    index_n_heads: int
    index_head_dim: int
    index_topk: int
    rope_theta: float = 10000.0
    compress_rope_theta: float = 160000.0
    yarn: V4Yarn = field(default_factory=V4Yarn)
    routed_scaling_factor: float = 1.0
    norm_topk_prob: bool = True
    scoring_func: str = "sqrtsoftplus"
    swiglu_limit: float = 10.0
    hc_mult: int = 4
    hc_sinkhorn_iters: int = 20
    hc_eps: float = 1e-6
    rms_norm_eps: float = 1e-6
    num_mtp_layers: int = 0
    mtp_compress_ratios: tuple[int, ...] = ()
    max_position: int = 1048576
    bos_token_id: int = 0
    eos_token_id: int = 1
    tie_embeddings: bool = False
    expert_dtype: str = "bf16"  # fp4 | fp8 | bf16 (how routed experts are stored)
    weight_fp8: bool = False  # linears stored as FP8 e4m3 with block scales
    scale_fmt: str = "ue8m0"  # ue8m0 | float32 (Base checkpoints)
    numerics: str = "exact"  # exact | official
    source_dialect: str = "hf"  # official | hf (transformers names) | hf_native (native names under model.)

    def layer_kind(self, i: int) -> str:
        r = self.compress_ratios[i]
        return LAYER_KIND.get(r, "hca")

    # --- sizes the CLI and benchmarks report --------------------------------------------------------
    def kv_bytes_per_token(self, dtype_bytes: int = 2) -> float:
        """Amortised cache bytes per token at long context (window rings excluded: they are fixed-size)."""
        total = 0.0
        for r in self.compress_ratios:
            if r:
                total += self.head_dim / r
                if r == 4:
                    total += self.index_head_dim / r
        return total * dtype_bytes

    def param_count(self) -> int:
        d, H, D = self.hidden_size, self.num_heads, self.head_dim
        hc = self.hc_mult
        n = 0
        for r in self.compress_ratios:
            attn = d * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * H * D + d * D + D + H
            attn += self.o_groups * self.o_lora_rank * (H * D // self.o_groups) + d * self.o_groups * self.o_lora_rank
            if r:
                coff = 2 if r == 4 else 1
                attn += 2 * coff * D * d + r * coff * D + D
            if r == 4:
                c = self.index_head_dim
                attn += self.index_n_heads * c * self.q_lora_rank + self.index_n_heads * d
                attn += 2 * 2 * c * d + r * 2 * c + c
            moe = self.n_routed_experts * d + self.n_routed_experts
            moe += (self.n_routed_experts + self.n_shared_experts) * 3 * d * self.moe_intermediate_size
            mhc = 2 * ((2 + hc) * hc * hc * d + (2 + hc) * hc + 3)
            n += attn + moe + mhc + 2 * d
        n += 2 * self.vocab_size * d + d + hc * hc * d + hc + 1
        return n


def _refuse_dialects(cfg: Mapping[str, Any]) -> None:
    name = " ".join(str(cfg.get(k, "")) for k in ("_name_or_path", "name_or_path", "model_name")).lower()
    if any(k in cfg for k in ("dspark", "dspark_config", "num_dspark_layers", "dspark_layers")) or "0731" in name:
        raise BadModelFile(
            "this is the DeepSeek-V4-Flash-0731 (DSpark) dialect, which this runtime does not support; "
            "use DeepSeek-V4-Flash or -Pro"
        )
    if any(k in cfg for k in ("engram_layer_ids", "engram_config", "candidate_topk_blocks", "kv_source_layers",
                              "index_source_layers")) or "v4.1" in name:
        raise BadModelFile("this is the DeepSeek-V4.1 dialect (Engram, shared source layers), which this runtime does not support")


def v4_from_hf(cfg: Mapping[str, Any]) -> DeepseekV4Config:
    """Parse an HF-style (legacy or transformers-renamed keys) or official inference config."""
    _refuse_dialects(cfg)
    g = cfg.get
    official = "dim" in cfg and "hidden_size" not in cfg
    n_layers = int(g("n_layers") if official else g("num_hidden_layers"))
    n_mtp = int(g("n_mtp_layers", 1) if official else g("num_nextn_predict_layers", 0) or 0)
    ratios = g("compress_ratios")
    if ratios is None and g("layer_types") is not None:  # transformers' renamed keys
        rates = {str(k): int(v) for k, v in (g("compress_rates") or {}).items()}
        ratios = []
        for t in g("layer_types"):
            if t == "sliding_attention":
                ratios.append(0)
            elif t in rates:
                ratios.append(rates[t])
            else:
                ratios.append({"compressed_sparse_attention": 4, "heavily_compressed_attention": 128}[t])
    if ratios is None:
        raise BadModelFile("DeepSeek-V4 config lacks compress_ratios (or layer_types)")
    ratios = [int(r) for r in ratios]
    if len(ratios) == n_layers + 3 + n_mtp or len(ratios) > n_layers + n_mtp:
        raise BadModelFile(
            f"compress_ratios has {len(ratios)} entries for {n_layers} layers + {n_mtp} MTP: this looks like the "
            "DeepSeek-V4-Flash-0731 (DSpark) dialect, which this runtime does not support"
        )
    if len(ratios) < n_layers:
        raise BadModelFile(f"compress_ratios has {len(ratios)} entries for {n_layers} layers")
    for r in ratios:  # 0 sliding, 4 CSA, any other positive ratio HCA (128 in the released models)
        if r < 0 or (r and r != 4 and r < 2):
            raise BadModelFile(f"compress ratio {r} is not supported (0, 4, or an HCA ratio such as 128)")

    # rope: legacy `rope_scaling` {type: yarn} or transformers' nested `rope_parameters`
    yarn = V4Yarn()
    theta = float(g("rope_theta", 10000.0))
    ctheta = float(g("compress_rope_theta", 160000.0))
    params = g("rope_parameters") or {}
    scaling = g("rope_scaling")
    if isinstance(params, Mapping) and "main" in params:
        theta = float(params["main"].get("rope_theta", theta))
        comp = params.get("compress") or {}
        ctheta = float(comp.get("rope_theta", ctheta))
        scaling = comp
    elif isinstance(params, Mapping) and params.get("rope_type") == "yarn":
        scaling = params
    if official:
        if int(g("original_seq_len", 0) or 0) > 0:
            yarn = V4Yarn(float(g("rope_factor", 1.0)), int(g("original_seq_len")), float(g("beta_fast", 32)), float(g("beta_slow", 1)))
    elif scaling and (scaling.get("type") or scaling.get("rope_type")) == "yarn":
        yarn = V4Yarn(
            float(scaling.get("factor", 1.0)),
            int(scaling.get("original_max_position_embeddings", 0) or 0),
            float(scaling.get("beta_fast", 32.0)),
            float(scaling.get("beta_slow", 1.0)),
        )
    q = g("quantization_config") or {}
    fp8 = (q.get("quant_method") == "fp8") if not official else g("dtype") == "fp8"
    scale_fmt = (q.get("scale_fmt") if not official else g("scale_fmt")) or ("ue8m0" if fp8 else "float32")
    expert_dtype = g("expert_dtype") or ("fp8" if fp8 else "bf16")
    key = (lambda off, hf: g(off) if official else g(hf))
    return DeepseekV4Config(
        architecture="deepseek_v4",
        vocab_size=int(g("vocab_size")),
        hidden_size=int(key("dim", "hidden_size")),
        num_layers=n_layers,
        num_heads=int(key("n_heads", "num_attention_heads")),
        head_dim=int(g("head_dim")),
        rope_head_dim=int(key("rope_head_dim", "qk_rope_head_dim")
                          or (int(g("head_dim")) * float(g("partial_rotary_factor")) if g("partial_rotary_factor") else 64)),
        q_lora_rank=int(g("q_lora_rank")),
        o_groups=int(g("o_groups")),
        o_lora_rank=int(g("o_lora_rank")),
        window=int(key("window_size", "sliding_window")),
        compress_ratios=tuple(ratios[:n_layers]),
        moe_intermediate_size=int(key("moe_inter_dim", "moe_intermediate_size")),
        n_routed_experts=int(g("n_routed_experts")),
        n_shared_experts=int(g("n_shared_experts", 1)),
        experts_per_token=int(key("n_activated_experts", "num_experts_per_tok")),
        num_hash_layers=int(key("n_hash_layers", "num_hash_layers")
                            or sum(t == "hash_moe" for t in (g("mlp_layer_types") or ()))),
        index_n_heads=int(g("index_n_heads")),
        index_head_dim=int(g("index_head_dim")),
        index_topk=int(g("index_topk")),
        rope_theta=theta,
        compress_rope_theta=ctheta,
        yarn=yarn,
        routed_scaling_factor=float(key("route_scale", "routed_scaling_factor") or 1.0),
        norm_topk_prob=bool(g("norm_topk_prob", True)),
        scoring_func=str(key("score_func", "scoring_func") or "sqrtsoftplus"),
        swiglu_limit=float(g("swiglu_limit", 10.0) or 0.0),
        hc_mult=int(g("hc_mult", 4)),
        hc_sinkhorn_iters=int(g("hc_sinkhorn_iters", 20)),
        hc_eps=float(g("hc_eps", 1e-6)),
        rms_norm_eps=float(key("norm_eps", "rms_norm_eps") or 1e-6),
        num_mtp_layers=n_mtp,
        # layer_types-style configs list the backbone only; the MTP block is sliding-only in every V4 release
        mtp_compress_ratios=tuple(ratios[n_layers:n_layers + n_mtp]) + (0,) * max(0, n_mtp - len(ratios[n_layers:])),
        max_position=int(g("max_position_embeddings", g("max_seq_len", 1048576)) or 1048576),
        bos_token_id=int(g("bos_token_id", 0) if g("bos_token_id") is not None else 0),
        eos_token_id=int(g("eos_token_id", 1) if isinstance(g("eos_token_id", 1), int) else 1),
        tie_embeddings=bool(g("tie_word_embeddings", False)),
        expert_dtype=str(expert_dtype),
        weight_fp8=bool(fp8),
        scale_fmt=str(scale_fmt),
        numerics=str(g("dsv4_numerics", "exact")),
        source_dialect="official" if official else "hf",
    )


def yarn_low_high(cfg: DeepseekV4Config, base: float) -> tuple[float, float]:
    """The YaRN correction range (floor/ceil) over the rope pair index."""
    dim, y = cfg.rope_head_dim, cfg.yarn

    def corr(rot: float) -> float:
        return dim * math.log(y.original_max_position / (rot * 2 * math.pi)) / (2 * math.log(base))

    low = math.floor(corr(y.beta_fast))
    high = math.ceil(corr(y.beta_slow))
    return max(low, 0), min(high, dim - 1)
