"""Tiny random DeepSeek-V4 models built without transformers (real vocabulary size, so the real tokenizer works)."""

from __future__ import annotations

import torch

from dsv4.runtime.deepseek_v4.model import DeepseekV4ForCausalLM
from dsv4.runtime.deepseek_v4.config import DeepseekV4Config, V4Yarn


def tiny_config(*, vocab=129280, d=32, layers=(0, 4, 8, 4), window=8, topk=3, head_dim=32, rope=16, idx_dim=32,
                experts=4, top=2, inter=32, yarn=True, hash_layers=1, heads=2, q_lora=32) -> DeepseekV4Config:
    return DeepseekV4Config(
        architecture="deepseek_v4", vocab_size=vocab, hidden_size=d, num_layers=len(layers), num_heads=heads,
        head_dim=head_dim, rope_head_dim=rope, q_lora_rank=q_lora, o_groups=2, o_lora_rank=16, window=window,
        compress_ratios=tuple(layers), moe_intermediate_size=inter, n_routed_experts=experts, n_shared_experts=1,
        experts_per_token=top, num_hash_layers=hash_layers, index_n_heads=2, index_head_dim=idx_dim, index_topk=topk,
        yarn=V4Yarn(4.0, 64, 32.0, 1.0) if yarn else V4Yarn(), routed_scaling_factor=1.5, max_position=1 << 20,
    )


def random_model(cfg: DeepseekV4Config, seed: int = 0) -> DeepseekV4ForCausalLM:
    g = torch.Generator().manual_seed(seed)
    m = DeepseekV4ForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in list(m.named_parameters()) + list(m.named_buffers()):
            if name.endswith("tid2eid"):
                p.copy_(torch.stack([torch.randperm(cfg.n_routed_experts, generator=g)[: cfg.experts_per_token]
                                     for _ in range(p.shape[0])]))
            elif name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("hc_attn.scale") or name.endswith("hc_ffn.scale") or name == "hc_head_scale":
                p.copy_(0.5 + 0.1 * torch.randn(p.shape, generator=g))
            elif name == "embed.weight":
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                std = 0.5 / max(p.shape[-1], 1) ** 0.5 if p.dim() >= 2 else 0.3
                p.copy_(std * torch.randn(p.shape, generator=g))
    return m
