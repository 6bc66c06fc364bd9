"""DeepSeek-V4 checkpoints: the official layout (native names, FP8 e4m3 weights with 128x128 ue8m0 or
float32 block scales, packed FP4 routed experts with 1x32 ue8m0 scales, BF16/F32/I64 tensors), the
transformers layout (renamed tensors, packed experts), and what transformers `save_pretrained` writes
(native names under `model.`). Tensors are streamed shard by shard and de-quantised one at a time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

from ..errors import BadModelFile
from .quantised import KEEPABLE, QuantisedTensor, attach

# --- formats -----------------------------------------------------------------------------------------

FP4_VALUES = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0])


def e8m0_to_float(scale: torch.Tensor) -> torch.Tensor:
    """ue8m0 bytes (float8_e8m0fnu or uint8) -> 2^(byte - 127) in float32."""
    if scale.dtype == torch.float8_e8m0fnu:
        scale = scale.view(torch.uint8)
    if scale.dtype == torch.uint8:
        return torch.exp2(scale.float() - 127.0)
    return scale.float()  # float32 scales (Base checkpoints)


def dequant_fp8_blocks(weight: torch.Tensor, scale: torch.Tensor, block: int = 128) -> torch.Tensor:
    """W[i, j] = fp8[i, j] * scale[i // block, j // block]."""
    w = weight.float() if weight.dtype != torch.uint8 else weight.view(torch.float8_e4m3fn).float()
    s = e8m0_to_float(scale)
    out, inp = w.shape
    s = s.repeat_interleave(block, 0)[:out].repeat_interleave(block, 1)[:, :inp]
    return w * s


def unpack_fp4(packed: torch.Tensor) -> torch.Tensor:
    """I8 [out, in/2] (element 2i in the low nibble, 2i+1 in the high) -> e2m1 values [out, in]."""
    b = packed.view(torch.uint8).long()
    lo, hi = b & 0xF, (b >> 4) & 0xF
    codes = torch.stack((lo, hi), dim=-1).flatten(-2)
    return FP4_VALUES[codes]


def dequant_fp4(packed: torch.Tensor, scale: torch.Tensor, block: int = 32) -> torch.Tensor:
    """W[o, k] = e2m1(code[o, k]) * 2^(e8m0[o, k // 32] - 127)."""
    v = unpack_fp4(packed)
    return v * e8m0_to_float(scale).repeat_interleave(block, 1)[:, : v.shape[1]]


# --- names -------------------------------------------------------------------------------------------

_HF_RENAMES = [
    (r"^model\.embed_tokens\.", "embed."),
    (r"^lm_head\.", "head."),
    (r"^model\.norm\.", "norm."),
    (r"^model\.hc_head\.hc_(fn|base|scale)$", r"hc_head_\1"),
    (r"^model\.layers\.", "layers."),
    (r"\.input_layernorm\.", ".attn_norm."),
    (r"\.post_attention_layernorm\.", ".ffn_norm."),
    (r"\.(attn|ffn)_hc\.(fn|base|scale)$", r".hc_\1_\2"),
    (r"\.self_attn\.compressor\.indexer\.scorer\.weights_proj\.", ".attn.indexer.weights_proj."),
    (r"\.self_attn\.compressor\.indexer\.q_b_proj\.", ".attn.indexer.wq_b."),
    (r"\.self_attn\.compressor\.indexer\.", ".attn.indexer.compressor."),
    (r"\.self_attn\.", ".attn."),
    (r"\.attn\.sinks$", ".attn.attn_sink"),
    (r"\.q_a_proj\.", ".wq_a."),
    (r"\.q_a_norm\.", ".q_norm."),
    (r"\.q_b_proj\.", ".wq_b."),
    (r"\.o_a_proj\.", ".wo_a."),
    (r"\.o_b_proj\.", ".wo_b."),
    (r"\.compressor\.position_bias$", ".compressor.ape"),
    (r"\.compressor\.kv_proj\.", ".compressor.wkv."),
    (r"\.compressor\.gate_proj\.", ".compressor.wgate."),
    (r"\.compressor\.kv_norm\.", ".compressor.norm."),
    (r"\.attn\.kv_proj\.", ".attn.wkv."),
    (r"\.mlp\.", ".ffn."),
    (r"\.gate\.e_score_correction_bias$", ".gate.bias"),
    (r"\.shared_experts\.gate_proj\.", ".shared_experts.w1."),
    (r"\.shared_experts\.up_proj\.", ".shared_experts.w3."),
    (r"\.shared_experts\.down_proj\.", ".shared_experts.w2."),
]


def hf_to_native(pairs: Iterable[tuple[str, torch.Tensor]]) -> Iterator[tuple[str, torch.Tensor]]:
    """transformers names -> native names; packed experts -> per-expert w1/w3/w2."""
    for name, t in pairs:
        for pat, rep in _HF_RENAMES:
            name = re.sub(pat, rep, name)
        m = re.match(r"^(layers\.\d+\.ffn\.experts)\.(gate_up_proj|down_proj)$", name)
        if m:
            base = m.group(1)
            if m.group(2) == "gate_up_proj":
                inter = t.shape[1] // 2
                yield f"{base}.w1", t[:, :inter]
                yield f"{base}.w3", t[:, inter:]
            else:
                yield f"{base}.w2", t
            continue
        yield name, t


def saved_native_to_native(pairs: Iterable[tuple[str, torch.Tensor]]) -> Iterator[tuple[str, torch.Tensor]]:
    """What transformers `save_pretrained` writes for V4 (native names under `model.`, with a few of its own:
    `embed_tokens`, `hc_head.hc_fn`, and `attn.norm` for the attention's kv_norm) -> native names."""
    for name, t in pairs:
        name = name.removeprefix("model.")
        name = re.sub(r"^embed_tokens\.", "embed.", name)
        name = re.sub(r"^hc_head\.hc_(fn|base|scale)$", r"hc_head_\1", name)
        name = re.sub(r"^(layers\.\d+\.attn)\.norm\.weight$", r"\1.kv_norm.weight", name)
        yield name, t


def load_native(model: torch.nn.Module, pairs: Iterable[tuple[str, torch.Tensor | QuantisedTensor]], *,
                strict: bool = True) -> None:
    """Copy (native name, float tensor) pairs into the model. Routed experts arrive either stacked
    (`experts.w1` (E, I, d)) or one at a time (`experts.E.w1.weight`). `mtp.N.*` tensors fill the model's
    MTP blocks; a checkpoint without them (the transformers layout drops MTP) loads with
    `model.mtp_loaded` False, and MTP tensors the config has no block for are kept on `model.mtp_tensors`.
    A `QuantisedTensor` (`dequantise_official(keep=...)`) is kept as it is on its module (quantised.py)."""
    params = dict(model.named_parameters())
    params.update(dict(model.named_buffers()))
    seen: set[str] = set()
    mtp: dict[str, torch.Tensor] = {}
    n_experts = model.config.n_routed_experts
    kept_linears: dict[str, QuantisedTensor] = {}
    kept_experts: dict[str, dict[int, dict[str, QuantisedTensor]]] = {}
    for name, t in pairs:
        name = re.sub(r"\.hc_(attn|ffn)_(fn|base|scale)$", r".hc_\1.\2", name)
        m = re.match(r"^((?:layers|mtp)\.\d+\.ffn\.experts)\.(\d+)\.(w[123])\.weight$", name)
        target = f"{m.group(1)}.{m.group(3)}" if m else name
        if name.startswith("mtp.") and target not in params and target + ".weight" not in params:
            mtp[name] = dequantise_kept(t) if isinstance(t, QuantisedTensor) else t
            continue
        if isinstance(t, QuantisedTensor):
            if target not in params:
                raise BadModelFile(f"unexpected tensor {name!r} in a DeepSeek-V4 checkpoint")
            want = tuple(params[target].shape[1:] if m else params[target].shape)
            if want != t.shape:
                raise BadModelFile(f"tensor {name}: shape {t.shape}, the config wants {want}")
            if m:
                kept_experts.setdefault(m.group(1), {}).setdefault(int(m.group(2)), {})[m.group(3)] = t
                seen.add(f"{target}:{m.group(2)}")
            else:
                kept_linears[target.removesuffix(".weight")] = t
                seen.add(target)
            continue
        with torch.no_grad():
            if m:
                key = f"{m.group(1)}.{m.group(3)}"
                params[key][int(m.group(2))].copy_(t)
                seen.add(f"{key}:{m.group(2)}")
                continue
            if name not in params and name + ".weight" in params:
                name = name + ".weight"
            if name not in params:
                if strict:
                    raise BadModelFile(f"unexpected tensor {name!r} in a DeepSeek-V4 checkpoint")
                continue
            dst = params[name]
            if dst.shape != t.shape:
                raise BadModelFile(f"tensor {name}: shape {tuple(t.shape)}, the config wants {tuple(dst.shape)}")
            dst.copy_(t)
            if name.endswith(("experts.w1", "experts.w2", "experts.w3")):
                for e in range(n_experts):
                    seen.add(f"{name}:{e}")
            else:
                seen.add(name)
    for module, by_expert in list(kept_experts.items()):  # a module keeps its experts only when all are quantised
        if len(by_expert) != n_experts or any(len(ws) != 3 for ws in by_expert.values()):
            with torch.no_grad():
                for e, ws in kept_experts.pop(module).items():
                    for w, t in ws.items():
                        params[f"{module}.{w}"][e].copy_(dequantise_kept(t))
    attach(model, kept_linears, kept_experts)
    model.mtp_tensors = mtp
    mtp_params = [n for n in params if n.startswith("mtp.")]
    mtp_seen = [n for n in seen if n.startswith("mtp.")]
    model.mtp_loaded = bool(mtp_params) and bool(mtp_seen)
    if strict:
        missing = []
        for name in params:
            if name.startswith("mtp.") and not mtp_seen:
                continue  # no MTP in this checkpoint: the backbone is complete without it
            if name.endswith(("experts.w1", "experts.w2", "experts.w3")):
                missing += [f"{name}:{e}" for e in range(n_experts) if f"{name}:{e}" not in seen]
            elif name not in seen:
                missing.append(name)
        if missing:
            raise BadModelFile(f"the checkpoint lacks {len(missing)} tensors, e.g. {missing[:3]}")


_HC_SCALE = re.compile(r"(hc_\w*scale|(attn_hc|ffn_hc|hc_head)\.\w*scale)$")  # mHC parameters, not block scales


def dequantise_kept(t: QuantisedTensor) -> torch.Tensor:
    return dequant_fp4(t.q, t.scale) if t.fmt == "fp4" else dequant_fp8_blocks(t.q, t.scale)


def dequantise_official(pairs: Iterable[tuple[str, torch.Tensor]], scale_block: int = 128, *,
                        keep: frozenset[str] = frozenset()) -> Iterator[tuple[str, torch.Tensor | QuantisedTensor]]:
    """Official tensors in file order -> float32 native tensors. A `.scale` tensor may come before or after
    its weight (within or across shards); both are held until the pair is complete. Weights in a format of
    `keep` ("fp8", "fp4") that the model can multiply quantised (`quantised.KEEPABLE`) come as `QuantisedTensor`."""
    waiting_w: dict[str, torch.Tensor] = {}
    waiting_s: dict[str, torch.Tensor] = {}

    def decode(base: str, w: torch.Tensor, s: torch.Tensor) -> torch.Tensor | QuantisedTensor:
        fp4 = (w.dtype in (torch.int8, torch.uint8) and ".experts." in base and ".shared_experts." not in base
               and s.shape[1] * 32 == w.shape[1] * 2)
        fmt = "fp4" if fp4 else "fp8"
        if fmt in keep and KEEPABLE.search(base) and (fp4 or scale_block == 128):
            return QuantisedTensor(fmt, w, s)
        return dequant_fp4(w, s) if fp4 else dequant_fp8_blocks(w, s, scale_block)

    for name, t in pairs:
        if name.endswith(".weight_scale_inv"):  # the name transformers/vLLM give block scales
            name = name[: -len(".weight_scale_inv")] + ".scale"
        if name.endswith(".scale") and not _HC_SCALE.search(name):
            base = name[: -len(".scale")] + ".weight"
            if base in waiting_w:
                yield base, decode(base, waiting_w.pop(base), t)
            else:
                waiting_s[base] = t
            continue
        if t.dtype in (torch.float8_e4m3fn, torch.int8, torch.uint8) and name.endswith(".weight"):
            if name in waiting_s:
                yield name, decode(name, t, waiting_s.pop(name))
            else:
                waiting_w[name] = t
            continue
        if t.dtype == torch.int64 or t.dtype == torch.int32:
            yield name, t
        else:
            yield name, t.float()
    if waiting_w:
        raise BadModelFile(f"{len(waiting_w)} quantised weights have no scale, e.g. {next(iter(waiting_w))}")


# --- files -------------------------------------------------------------------------------------------


def safetensor_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.exists():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [folder / n for n in names]
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise BadModelFile(f"{folder} has no .safetensors files")
    return files


def iter_safetensors(files: list[Path]) -> Iterator[tuple[str, torch.Tensor]]:
    from safetensors import safe_open

    for f in files:
        with safe_open(str(f), framework="pt") as fh:
            for name in fh.keys():
                yield name, fh.get_tensor(name)


def detect_layout(names: Iterable[str]) -> str:
    """official (native names), hf (transformers names) or hf_native (native names under `model.`)."""
    names = list(names)
    if any(".self_attn." in n or ".mlp." in n or n.startswith("lm_head.") for n in names):
        return "hf"
    if any(n.startswith("model.") for n in names):
        return "hf_native"
    return "official"


def native_tensors(folder: Path, *, keep: frozenset[str] = frozenset()) -> Iterator[tuple[str, torch.Tensor | QuantisedTensor]]:
    """Every tensor of a V4 checkpoint folder as (native name, float32/int64 tensor), shard by shard; weights in
    a format of `keep` as they are stored (official and saved-native layouts; the transformers layout repacks
    its experts, so it is always de-quantised)."""
    from safetensors import safe_open

    files = safetensor_files(folder)
    with safe_open(str(files[0]), framework="pt") as fh:
        layout = detect_layout(fh.keys())
    pairs = iter_safetensors(files)
    if layout == "hf":
        pairs = hf_to_native(dequantise_official(pairs))
    elif layout == "hf_native":
        pairs = saved_native_to_native(dequantise_official(pairs, keep=keep))
    else:
        pairs = dequantise_official(pairs, keep=keep)
    return pairs


def load_v4(folder: str | Path, *, numerics: str | None = None, dtype: torch.dtype = torch.float32,
            keep: frozenset[str] = frozenset()):
    """Build a DeepseekV4ForCausalLM from a checkpoint folder (config.json + safetensors, any layout). `keep`:
    the checkpoint formats ("fp8", "fp4") whose weights stay quantised (CUDA; `device.quantised_weight_formats`)."""
    from .model import DeepseekV4ForCausalLM
    from .config import v4_from_hf

    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.exists():
        cfg_path = folder / "inference" / "config.json"
    cfg = v4_from_hf(json.loads(cfg_path.read_text()))
    if numerics:
        cfg.numerics = numerics
    model = DeepseekV4ForCausalLM(cfg)
    if keep and cfg.numerics != "exact":
        keep = frozenset()  # official numerics simulates the reference's GEMMs on de-quantised weights
    load_native(model, native_tensors(folder, keep=keep))
    model.set_numerics(cfg.numerics)
    return model.to(dtype) if dtype != torch.float32 else model
