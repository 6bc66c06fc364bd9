"""Test-only: writes random DeepSeek-V4 models as checkpoints in the official layout (FP8/FP4) and their
HF config, the inverse of the product's loader in `dsv4.runtime.deepseek_v4.checkpoint`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from dsv4.runtime.deepseek_v4.checkpoint import FP4_VALUES
from dsv4.runtime.deepseek_v4.numerics import e2m1_round

# --- writing (tiny test checkpoints, conversions) ------------------------------------------------------

FP8_OFFICIAL = re.compile(r"(\.attn\.(wq_a|wq_b|wkv|wo_a|wo_b)|\.indexer\.wq_b|\.shared_experts\.w[123]|^mtp\.\d+\.[eh]_proj)\.weight$")
FP4_OFFICIAL = re.compile(r"\.ffn\.experts\.\d+\.w[123]\.weight$")


def native_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Our parameters under their official native names (routed experts one by one, mHC flattened)."""
    out: dict[str, torch.Tensor] = {}
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        t = t.detach()
        m = re.match(r"^((?:layers|mtp)\.\d+\.ffn\.experts)\.(w[123])$", name)
        if m:
            for e in range(t.shape[0]):
                out[f"{m.group(1)}.{e}.{m.group(2)}.weight"] = t[e].clone()
            continue
        name = re.sub(r"\.hc_(attn|ffn)\.(fn|base|scale)$", r".hc_\1_\2", name)
        out[name] = t.clone()
    return out


def quant_fp8_blocks(w: torch.Tensor, block: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """float [out, in] -> (float8_e4m3fn weight, float8_e8m0fnu scales [ceil(out/b), ceil(in/b)])."""
    out_f, in_f = w.shape
    po, pi = (-out_f) % block, (-in_f) % block
    wp = torch.nn.functional.pad(w.float(), (0, pi, 0, po))
    g = wp.view(wp.shape[0] // block, block, wp.shape[1] // block, block)
    amax = g.abs().amax(dim=(1, 3)).clamp(min=1e-4)
    scale = torch.exp2(torch.ceil(torch.log2(amax / 448.0)))
    s = scale.repeat_interleave(block, 0).repeat_interleave(block, 1)[:out_f, :in_f]
    q = (w.float() / s).clamp(-448, 448).to(torch.float8_e4m3fn)
    return q, scale.to(torch.float8_e8m0fnu)


def quant_fp4(w: torch.Tensor, block: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """float [out, in] -> (int8 [out, in/2] packed e2m1, low nibble first; float8_e8m0fnu [out, in/32])."""
    out_f, in_f = w.shape
    g = w.float().view(out_f, in_f // block, block)
    amax = g.abs().amax(-1).clamp(min=6.0 * 2.0 ** -126)
    scale = torch.exp2(torch.ceil(torch.log2(amax / 6.0)))
    v = e2m1_round(g / scale[..., None]).view(out_f, in_f)
    mag = torch.bucketize(v.abs(), FP4_VALUES[:8]).clamp(max=7)
    codes = mag | ((v < 0).long() << 3)
    packed = (codes[:, 0::2] | (codes[:, 1::2] << 4)).to(torch.uint8).view(torch.int8)
    return packed, scale.to(torch.float8_e8m0fnu)


def write_official(model: torch.nn.Module, folder: str | Path, *, shards: int = 3, expert_dtype: str = "fp4") -> None:
    """Write `model` in the official layout: FP8 linears with 128x128 ue8m0 scales, FP4 (or FP8) routed
    experts, everything else float32, split over `shards` files with an index, plus config.json."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for name, t in native_state_dict(model).items():
        if FP4_OFFICIAL.search(name):
            q, s = quant_fp4(t) if expert_dtype == "fp4" else quant_fp8_blocks(t)
            tensors[name], tensors[name[: -len(".weight")] + ".scale"] = q, s
        elif FP8_OFFICIAL.search(name):
            q, s = quant_fp8_blocks(t)
            tensors[name], tensors[name[: -len(".weight")] + ".scale"] = q, s
        else:
            tensors[name] = t.contiguous()
    names = list(tensors)
    per = -(-len(names) // shards)
    weight_map = {}
    for i in range(shards):
        part = names[i * per:(i + 1) * per]
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        # scales go to the shard after their weight now and then, as in real multi-file checkpoints
        save_file({n: tensors[n].contiguous() for n in part}, str(folder / fname))
        weight_map.update({n: fname for n in part})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (folder / "config.json").write_text(json.dumps(config_to_hf(model.config, expert_dtype=expert_dtype), indent=1))


def config_to_hf(cfg, *, expert_dtype: str = "fp4") -> dict:
    """Our config as a legacy-key HF config.json like the one DeepSeek ships."""
    return {
        "architectures": ["DeepseekV4ForCausalLM"], "model_type": "deepseek_v4",
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size, "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads, "num_key_value_heads": 1, "head_dim": cfg.head_dim,
        "qk_rope_head_dim": cfg.rope_head_dim, "q_lora_rank": cfg.q_lora_rank, "o_groups": cfg.o_groups,
        "o_lora_rank": cfg.o_lora_rank, "sliding_window": cfg.window,
        "compress_ratios": list(cfg.compress_ratios) + list(cfg.mtp_compress_ratios),
        "num_nextn_predict_layers": cfg.num_mtp_layers,
        "moe_intermediate_size": cfg.moe_intermediate_size, "n_routed_experts": cfg.n_routed_experts,
        "n_shared_experts": cfg.n_shared_experts, "num_experts_per_tok": cfg.experts_per_token,
        "num_hash_layers": cfg.num_hash_layers, "index_n_heads": cfg.index_n_heads,
        "index_head_dim": cfg.index_head_dim, "index_topk": cfg.index_topk, "rope_theta": cfg.rope_theta,
        "compress_rope_theta": cfg.compress_rope_theta,
        "rope_scaling": ({"type": "yarn", "factor": cfg.yarn.factor,
                          "original_max_position_embeddings": cfg.yarn.original_max_position,
                          "beta_fast": cfg.yarn.beta_fast, "beta_slow": cfg.yarn.beta_slow}
                         if cfg.yarn.original_max_position else None),
        "routed_scaling_factor": cfg.routed_scaling_factor, "norm_topk_prob": cfg.norm_topk_prob,
        "scoring_func": cfg.scoring_func, "swiglu_limit": cfg.swiglu_limit, "hc_mult": cfg.hc_mult,
        "hc_sinkhorn_iters": cfg.hc_sinkhorn_iters, "hc_eps": cfg.hc_eps, "rms_norm_eps": cfg.rms_norm_eps,
        "max_position_embeddings": cfg.max_position, "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id, "tie_word_embeddings": False, "expert_dtype": expert_dtype,
        "quantization_config": {"quant_method": "fp8", "fmt": "e4m3", "scale_fmt": "ue8m0",
                                "activation_scheme": "dynamic", "weight_block_size": [128, 128]},
    }
