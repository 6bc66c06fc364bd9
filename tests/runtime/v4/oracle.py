"""Shared helpers: tiny random V4 configs built in transformers and in our runtime, same weights."""

from __future__ import annotations

import contextlib

import torch

from dsv4.runtime.deepseek_v4.checkpoint import hf_to_native, load_native
from dsv4.runtime.deepseek_v4.model import DeepseekV4ForCausalLM
from dsv4.runtime.deepseek_v4.config import v4_from_hf

KIND = {0: "sliding_attention", 4: "compressed_sparse_attention"}


def hf_kwargs(ratios, *, inter=16, hca=8, hash_layers=1, yarn=True, topk=3, window=8, vocab=64, d=32, heads=4, head_dim=16,
              experts=4, top=2, rope_factor=0.5, idx_heads=2, idx_dim=16):
    kinds = [KIND.get(r, "heavily_compressed_attention") for r in ratios]
    rope = {"rope_type": "default", "rope_theta": 10000.0}
    if yarn:
        rope = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32, "beta_fast": 32,
                "beta_slow": 1, "rope_theta": 10000.0}
    return dict(
        vocab_size=vocab, hidden_size=d, moe_intermediate_size=inter, num_hidden_layers=len(ratios),
        num_attention_heads=heads, head_dim=head_dim, q_lora_rank=16, o_groups=2, o_lora_rank=8,
        n_routed_experts=experts, num_experts_per_tok=top, n_shared_experts=1, layer_types=kinds,
        compress_rates={"compressed_sparse_attention": 4, "heavily_compressed_attention": hca},
        mlp_layer_types=["hash_moe"] * hash_layers + ["moe"] * (len(ratios) - hash_layers),
        sliding_window=window, index_n_heads=idx_heads, index_head_dim=idx_dim, index_topk=topk,
        partial_rotary_factor=rope_factor, rope_parameters=rope, compress_rope_theta=160000.0,
        max_position_embeddings=128, routed_scaling_factor=1.5, swiglu_limit=10.0, rms_norm_eps=1e-6,
    )


def build_pair(seed: int = 0, **kw):
    from transformers import DeepseekV4Config as HFConfig
    from transformers import DeepseekV4ForCausalLM as HFModel

    torch.manual_seed(seed)
    hcfg = HFConfig(**kw)
    hf = HFModel(hcfg).eval()
    with torch.no_grad():
        for name, p in list(hf.named_parameters()) + list(hf.named_buffers()):
            if name.endswith("tid2eid"):
                p.copy_(torch.stack([torch.randperm(kw["n_routed_experts"])[: kw["num_experts_per_tok"]]
                                     for _ in range(p.shape[0])]))
            elif p.dtype.is_floating_point and "inv_freq" not in name:
                if name.endswith(("norm.weight", "layernorm.weight")):
                    p.copy_(1 + 0.1 * torch.randn_like(p))
                elif name.endswith(("hc.scale", "hc_scale")):
                    p.copy_(0.5 + 0.1 * torch.randn_like(p))
                elif name.endswith(("embed_tokens.weight",)):
                    p.copy_(torch.randn_like(p))
                else:
                    std = 0.5 / max(p.shape[-1], 1) ** 0.5 if p.dim() >= 2 else 0.3
                    p.copy_(std * torch.randn_like(p))
    ours = DeepseekV4ForCausalLM(v4_from_hf(hcfg.to_dict() | {"compress_ratios": None}))
    load_native(ours, hf_to_native(hf.state_dict().items()))
    return hf, ours


def _stable_topk_method(self, k, dim=-1, largest=True, sorted=True):
    assert dim in (-1, self.dim() - 1) and largest
    # the rule written independently of ours: a stable descending sort (ties keep index order)
    idx = torch.sort(self, dim=-1, descending=True, stable=True).indices[..., :k]
    return torch.return_types.topk((torch.gather(self, -1, idx), idx))


@contextlib.contextmanager
def oracle_tie_rule():
    """Make the oracle's indexer top-k use our deterministic rule (score desc, then lower index)."""
    from transformers.models.deepseek_v4 import modeling_deepseek_v4 as mod

    orig = mod.DeepseekV4Indexer.forward

    def forward(self, *a, **k):
        saved = torch.Tensor.topk
        torch.Tensor.topk = _stable_topk_method
        try:
            return orig(self, *a, **k)
        finally:
            torch.Tensor.topk = saved

    mod.DeepseekV4Indexer.forward = forward
    try:
        yield
    finally:
        mod.DeepseekV4Indexer.forward = orig
