"""Model configs (slots dataclasses) parsed from HF `config.json` or GGUF metadata, and the architecture registry.

An architecture entry says which checkpoint dialects it reads and where its model class lives; the
class is imported by dotted path only when a model is built, so this module stays torch-free.
`deepseek_v4` and `deepseek_v3` plug in here with their own parsers and model modules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import BadModelFile


@dataclass(slots=True)
class RopeScaling:
    kind: str = "default"  # default | linear | llama3 | yarn
    factor: float = 1.0
    original_max_position: int | None = None
    low_freq_factor: float = 1.0  # llama3
    high_freq_factor: float = 4.0  # llama3
    beta_fast: float = 32.0  # yarn
    beta_slow: float = 1.0  # yarn
    attention_factor: float | None = None  # yarn; None: 0.1 * ln(factor) + 1


@dataclass(slots=True)
class ModelConfig:
    architecture: str  # registry key
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    rope_scaling: RopeScaling = field(default_factory=RopeScaling)
    # GGUF llama files store q/k rows permuted so rotary pairs are (2i, 2i+1); HF pairs are (i, i + D/2).
    rope_interleaved: bool = False
    max_position: int = 2048
    tie_embeddings: bool = False
    attention_bias: bool = False  # qwen2: biases on q, k, v
    source_dialect: str = "hf"  # "hf" | "gguf": tells the model how checkpoint tensors are named

    def kv_bytes_per_token(self, dtype_bytes: int = 2) -> int:
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * dtype_bytes

    def param_count(self) -> int:
        attn = self.hidden_size * (self.num_heads + 2 * self.num_kv_heads) * self.head_dim
        attn += self.num_heads * self.head_dim * self.hidden_size
        mlp = 3 * self.hidden_size * self.intermediate_size
        per_layer = attn + mlp + 2 * self.hidden_size
        embed = self.vocab_size * self.hidden_size * (1 if self.tie_embeddings else 2)
        return self.num_layers * per_layer + embed + self.hidden_size


@dataclass(slots=True, frozen=True)
class Architecture:
    name: str
    hf_model_types: tuple[str, ...]
    gguf_architectures: tuple[str, ...]
    model_class: str  # "module:Class", imported lazily
    from_hf: Callable[[Mapping[str, Any]], ModelConfig]
    from_gguf: Callable[[Mapping[str, Any]], ModelConfig]


ARCHITECTURES: dict[str, Architecture] = {}


def register(arch: Architecture) -> None:
    ARCHITECTURES[arch.name] = arch


def architecture_for_hf(model_type: str) -> Architecture:
    for arch in ARCHITECTURES.values():
        if model_type in arch.hf_model_types:
            return arch
    raise BadModelFile(f"model_type {model_type!r} is not supported; supported: {_supported('hf_model_types')}")


def architecture_for_gguf(gguf_arch: str) -> Architecture:
    for arch in ARCHITECTURES.values():
        if gguf_arch in arch.gguf_architectures:
            return arch
    raise BadModelFile(
        f"GGUF architecture {gguf_arch!r} is not supported; supported: {_supported('gguf_architectures')}"
    )


def _supported(attr: str) -> str:
    return ", ".join(sorted(name for arch in ARCHITECTURES.values() for name in getattr(arch, attr)))


# --- llama family (Llama, SmolLM2, Mistral, Qwen2) ----------------------------------------------------


def _rope_from_hf(cfg: Mapping[str, Any]) -> tuple[float, RopeScaling]:
    # transformers 5 writes `rope_parameters`; older configs `rope_theta` + `rope_scaling`
    params = dict(cfg.get("rope_parameters") or {})
    theta = float(params.get("rope_theta", cfg.get("rope_theta", 10000.0)))
    scaling = dict(cfg.get("rope_scaling") or params)
    kind = scaling.get("rope_type", scaling.get("type", "default")) or "default"
    if kind not in ("default", "linear", "llama3", "yarn"):
        raise BadModelFile(f"rope scaling {kind!r} is not supported (default, linear, llama3, yarn)")
    rope = RopeScaling(kind=kind, factor=float(scaling.get("factor", 1.0)))
    rope.original_max_position = scaling.get("original_max_position_embeddings")
    rope.low_freq_factor = float(scaling.get("low_freq_factor", 1.0))
    rope.high_freq_factor = float(scaling.get("high_freq_factor", 4.0))
    rope.beta_fast = float(scaling.get("beta_fast", 32.0))
    rope.beta_slow = float(scaling.get("beta_slow", 1.0))
    rope.attention_factor = scaling.get("attention_factor")
    return theta, rope


def llama_from_hf(cfg: Mapping[str, Any]) -> ModelConfig:
    hidden, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
    theta, rope = _rope_from_hf(cfg)
    return ModelConfig(
        architecture="llama",
        vocab_size=int(cfg["vocab_size"]),
        hidden_size=hidden,
        intermediate_size=int(cfg["intermediate_size"]),
        num_layers=int(cfg["num_hidden_layers"]),
        num_heads=heads,
        num_kv_heads=int(cfg.get("num_key_value_heads") or heads),
        head_dim=int(cfg.get("head_dim") or hidden // heads),
        rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
        rope_theta=theta,
        rope_scaling=rope,
        rope_interleaved=False,
        max_position=int(cfg.get("max_position_embeddings", 2048)),
        tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        attention_bias=bool(cfg.get("attention_bias", cfg.get("model_type") == "qwen2")),
        source_dialect="hf",
    )


def llama_from_gguf(meta: Mapping[str, Any]) -> ModelConfig:
    arch = meta["general.architecture"]

    def key(name: str, default: Any = None) -> Any:
        value = meta.get(f"{arch}.{name}", default)
        if value is None:
            raise BadModelFile(f"GGUF metadata lacks {arch}.{name}")
        return value

    hidden, heads = int(key("embedding_length")), int(key("attention.head_count"))
    vocab = meta.get(f"{arch}.vocab_size") or len(meta.get("tokenizer.ggml.tokens") or ())
    kind = str(meta.get(f"{arch}.rope.scaling.type", "none"))
    rope = RopeScaling()
    if kind in ("linear", "yarn"):
        rope = RopeScaling(kind=kind, factor=float(key("rope.scaling.factor")))
        rope.original_max_position = meta.get(f"{arch}.rope.scaling.original_context_length")
        if kind == "yarn":
            rope.beta_fast = float(meta.get(f"{arch}.rope.scaling.yarn_beta_fast", 32.0))
            rope.beta_slow = float(meta.get(f"{arch}.rope.scaling.yarn_beta_slow", 1.0))
    elif kind not in ("none", "default"):
        raise BadModelFile(f"GGUF rope scaling {kind!r} is not supported (linear, yarn)")
    return ModelConfig(
        architecture="llama",
        vocab_size=int(vocab),
        hidden_size=hidden,
        intermediate_size=int(key("feed_forward_length")),
        num_layers=int(key("block_count")),
        num_heads=heads,
        num_kv_heads=int(meta.get(f"{arch}.attention.head_count_kv") or heads),
        head_dim=int(meta.get(f"{arch}.attention.key_length") or hidden // heads),
        rms_norm_eps=float(key("attention.layer_norm_rms_epsilon", 1e-5)),
        rope_theta=float(meta.get(f"{arch}.rope.freq_base", 10000.0)),
        rope_scaling=rope,
        # llama.cpp's converter permutes q/k only for the `llama` graph (normal rope); qwen2 keeps HF order (neox rope)
        rope_interleaved=arch == "llama",
        max_position=int(key("context_length", 2048)),
        tie_embeddings=True,  # corrected by the loader when an output.weight tensor is present
        attention_bias=arch == "qwen2",
        source_dialect="gguf",
    )


register(
    Architecture(
        name="llama",
        hf_model_types=("llama", "mistral", "qwen2"),
        gguf_architectures=("llama", "mistral", "qwen2"),
        model_class="dsv4.runtime.models.llama:LlamaForCausalLM",
        from_hf=llama_from_hf,
        from_gguf=llama_from_gguf,
    )
)


# --- DeepSeek-V4 (Flash / Pro) -----------------------------------------------------------------------


def _v4_from_hf(cfg: Mapping[str, Any]):
    from .deepseek_v4.config import v4_from_hf

    return v4_from_hf(cfg)


def _v4_from_gguf(meta: Mapping[str, Any]):
    raise BadModelFile("DeepSeek-V4 GGUF files are not supported; use a safetensors checkpoint folder")


register(
    Architecture(
        name="deepseek_v4",
        hf_model_types=("deepseek_v4",),
        gguf_architectures=(),
        model_class="dsv4.runtime.deepseek_v4.model:DeepseekV4ForCausalLM",
        from_hf=_v4_from_hf,
        from_gguf=_v4_from_gguf,
    )
)
