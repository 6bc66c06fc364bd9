"""Llama-family decoder (Llama 2/3, SmolLM2, Mistral, Qwen2): RMSNorm, RoPE, GQA, SwiGLU.

Tokens are a flat (T,) sequence of one conversation; the KV cache lives in each layer's `Attention`.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..config import ModelConfig
from ..errors import BadModelFile
from ..layers.activation import SiluAndMul
from ..layers.attention import Attention, AttnContext
from ..layers.embedding import VocabEmbedding
from ..layers.linear import Linear
from ..layers.norm import ResidualRMSNorm
from ..layers.rotary import RotaryEmbedding
from ..loaders import mapped_pages
from ..quant import Q4Groups


class LlamaAttention(nn.Module):
    def __init__(self, cfg: ModelConfig, rotary: RotaryEmbedding, weight_dtype: str, act_dtype: torch.dtype, prefill_copy: bool) -> None:
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        q_size, kv_size = cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
        kw = {"weight_dtype": weight_dtype, "act_dtype": act_dtype, "prefill_copy": prefill_copy}
        self.qkv_proj = Linear(cfg.hidden_size, [q_size, kv_size, kv_size], bias=cfg.attention_bias, **kw)
        self.o_proj = Linear(q_size, cfg.hidden_size, bias=False, **kw)
        self.rotary = rotary  # one instance shared by all layers; its tables are non-persistent buffers
        self.attn = Attention(cfg.num_heads, cfg.num_kv_heads, cfg.head_dim)

    def forward(self, x: torch.Tensor, ctx: AttnContext) -> torch.Tensor:
        T = x.shape[0]
        qkv = self.qkv_proj(x)  # (T, (H+2Hkv)*D)
        kernels = self.attn.decode_kernels(T)
        if kernels is not None:  # one token on the CPU in bf16: rotary, cache write and attention as two C calls
            rotary = self.rotary
            return self.o_proj(self.attn.forward_decode(qkv, rotary.cos, rotary.sin, rotary.interleaved, ctx.start, kernels))
        kernels = self.attn.prefill_kernels() if T > 1 else None
        if kernels is not None:  # a chunk on the CPU in bf16: rotary + cache writes, then causal attention, as two C calls
            rotary = self.rotary
            return self.o_proj(self.attn.forward_prefill(qkv, rotary.cos, rotary.sin, rotary.interleaved, ctx.start, kernels))
        qkv = qkv.view(T, self.num_heads + 2 * self.num_kv_heads, self.head_dim)  # (T, H+2Hkv, D)
        qk = self.rotary(qkv[:, : self.num_heads + self.num_kv_heads], ctx.start)  # (T, H+Hkv, D)
        q, k = qk[:, : self.num_heads], qk[:, self.num_heads :]
        v = qkv[:, self.num_heads + self.num_kv_heads :]  # (T, Hkv, D)
        return self.o_proj(self.attn(q, k, v, ctx))  # (T, hidden)


class LlamaMLP(nn.Module):
    def __init__(self, cfg: ModelConfig, weight_dtype: str, act_dtype: torch.dtype, prefill_copy: bool) -> None:
        super().__init__()
        inter = cfg.intermediate_size
        kw = {"weight_dtype": weight_dtype, "act_dtype": act_dtype, "prefill_copy": prefill_copy}
        self.gate_up_proj = Linear(cfg.hidden_size, [inter, inter], bias=False, **kw)
        self.down_proj = Linear(inter, cfg.hidden_size, bias=False, **kw)
        self.act = SiluAndMul()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act(self.gate_up_proj(x)))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, rotary: RotaryEmbedding, weight_dtype: str, act_dtype: torch.dtype, prefill_copy: bool) -> None:
        super().__init__()
        self.input_layernorm = ResidualRMSNorm(cfg.hidden_size, cfg.rms_norm_eps, act_dtype)
        self.self_attn = LlamaAttention(cfg, rotary, weight_dtype, act_dtype, prefill_copy)
        self.post_attention_layernorm = ResidualRMSNorm(cfg.hidden_size, cfg.rms_norm_eps, act_dtype)
        self.mlp = LlamaMLP(cfg, weight_dtype, act_dtype, prefill_copy)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None, ctx: AttnContext) -> tuple[torch.Tensor, torch.Tensor]:
        h, residual = self.input_layernorm(x, residual)
        h = self.self_attn(h, ctx)
        h, residual = self.post_attention_layernorm(h, residual)
        return self.mlp(h), residual


class LlamaForCausalLM(nn.Module):
    # checkpoint projection name -> (merged module, shard index)
    packed_modules = {
        "q_proj": ("qkv_proj", 0),
        "k_proj": ("qkv_proj", 1),
        "v_proj": ("qkv_proj", 2),
        "gate_proj": ("gate_up_proj", 0),
        "up_proj": ("gate_up_proj", 1),
    }

    def __init__(
        self, cfg: ModelConfig, *, weight_dtype: str = "fp32", act_dtype: torch.dtype = torch.float32, prefill_copy: bool = False
    ) -> None:
        """prefill_copy: keep a bf16 copy of integer weights for multi-token chunks (faster prefill, 2 bytes/param more)."""
        super().__init__()
        self.config = cfg
        self.act_dtype = act_dtype
        self.rope_freq_factors: torch.Tensor | None = None  # from the checkpoint, kept for the packed-weight cache
        self.rotary = RotaryEmbedding(
            cfg.head_dim, cfg.max_position, cfg.rope_theta, cfg.rope_scaling, interleaved=cfg.rope_interleaved, dtype=act_dtype
        )
        self.embed_tokens = VocabEmbedding(cfg.vocab_size, cfg.hidden_size, weight_dtype=weight_dtype, act_dtype=act_dtype)
        self.layers = nn.ModuleList(
            LlamaDecoderLayer(cfg, self.rotary, weight_dtype, act_dtype, prefill_copy) for _ in range(cfg.num_layers)
        )
        self.norm = ResidualRMSNorm(cfg.hidden_size, cfg.rms_norm_eps, act_dtype)
        self.lm_head = self.embed_tokens if cfg.tie_embeddings else VocabEmbedding(
            cfg.vocab_size, cfg.hidden_size, weight_dtype=weight_dtype, act_dtype=act_dtype
        )

    def attention_layers(self) -> list[Attention]:
        return [layer.self_attn.attn for layer in self.layers]

    def forward(self, ids: torch.Tensor, ctx: AttnContext) -> torch.Tensor:
        """ids: (T,) new tokens at positions ctx.start.. -> final hidden states (T, hidden)."""
        h, residual = self.embed_tokens(ids), None  # (T, hidden)
        for layer in self.layers:
            h, residual = layer(h, residual, ctx)
        h, _ = self.norm(h, residual)
        return h

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head.logits(hidden)  # (T, V) float32

    @torch.no_grad()
    def load_weights(self, tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Consume (HF name, float32 tensor) pairs one at a time, so peak memory stays near the model size."""
        seen: set[str] = set()
        for name, tensor in tensors:
            if name == "rope_freqs":
                self.rotary.set_freq_factors(tensor)
                self.rope_freq_factors = tensor.float()
                continue
            if name == "lm_head.weight" and self.config.tie_embeddings:
                continue
            module_name, _, kind = name.rpartition(".")
            parent, _, leaf = module_name.rpartition(".")
            if leaf in self.packed_modules:
                merged, shard = self.packed_modules[leaf]
                target = self.get_submodule(f"{parent}.{merged}".removeprefix("model."))
                target.load_shard(shard, **{kind: tensor})
                seen.add(f"{parent}.{merged}.{kind}:{shard}")
                continue
            module = self.get_submodule(module_name.removeprefix("model."))
            if isinstance(tensor, Q4Groups) and not isinstance(module, Linear):
                tensor = tensor.dequantize()
            if isinstance(module, Linear):
                module.load_shard(0, **{kind: tensor})
            elif isinstance(module, VocabEmbedding):
                module.load(tensor)
            else:
                getattr(module, kind).copy_(tensor)
            seen.add(name)
        for module in self.modules():
            if isinstance(module, Linear):
                module.finalize()
        expected = 2 + 9 * self.config.num_layers + (0 if self.config.tie_embeddings else 1)
        if len(seen) < expected:
            raise BadModelFile(f"checkpoint has {len(seen)} of the {expected} weight tensors this model needs")

    # --- the packed-weight cache (runtime/loaders/packed_cache.py) ----------------------------------

    def packed_state(self) -> dict[str, torch.Tensor]:
        """Every weight as this model stores it after loading (packed int4, int8 rows, bf16 copies)."""
        state = dict(self.state_dict())
        if self.rope_freq_factors is not None:
            state[ROPE_FACTORS_KEY] = self.rope_freq_factors
        return state

    @torch.no_grad()
    def restore_packed_state(self, state: dict[str, torch.Tensor]) -> bool:
        """Adopt a packed_state() (tensors are used as they are, e.g. memory-mapped); False, with nothing
        changed, when it does not fit this model (then the caller loads the checkpoint instead)."""
        state = dict(state)
        factors = state.pop(ROPE_FACTORS_KEY, None)
        current = self.state_dict()
        # int4 layers register their packed weight and scales only when packed, so those two may differ
        int4 = {f"{n}.{leaf}" for n, m in self.named_modules() if isinstance(m, Linear) and m.weight_dtype == "int4" for leaf in ("weight", "scale")}
        if set(current) - set(state) - int4 or set(state) - set(current) - int4:
            return False
        for name, tensor in state.items():
            have = current.get(name)
            if name not in int4 and (have is None or have.shape != tensor.shape or have.dtype != tensor.dtype):
                return False
        if factors is not None:
            self.rotary.set_freq_factors(factors)
            self.rope_freq_factors = factors
        for name, tensor in state.items():
            module_name, _, leaf = name.rpartition(".")
            setattr(self.get_submodule(module_name), leaf, nn.Parameter(tensor, requires_grad=False))
        file_ranges = mapped_pages.private_file_ranges()
        for module in self.modules():
            if isinstance(module, Linear):
                module.discard_staging()
                # a bf16 prefill copy is read once per prompt chunk: not kept resident beside the int weights
                module.release_prefill_pages = module.prefill_weight is not None and mapped_pages.within(module.prefill_weight, file_ranges)
        return True


ROPE_FACTORS_KEY = "rotary.freq_factors"
