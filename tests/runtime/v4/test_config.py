"""V4 config parsing: the real V4-Flash config, the official inference config, transformers' keys, dialects."""

import json
from pathlib import Path

import pytest

from dsv4.runtime.config import architecture_for_hf
from dsv4.runtime.errors import BadModelFile
from dsv4.runtime.deepseek_v4.config import v4_from_hf, yarn_low_high

REF = Path("/work/shared/reference/dsv4_flash")


def _flash():
    if not (REF / "config.json").exists():
        pytest.skip("reference config not present")
    return json.loads((REF / "config.json").read_text())


def test_flash_config():
    cfg = architecture_for_hf("deepseek_v4").from_hf(_flash())
    assert (cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.head_dim, cfg.rope_head_dim) == (4096, 43, 64, 512, 64)
    assert len(cfg.compress_ratios) == 43 and cfg.mtp_compress_ratios == (0,)
    kinds = [cfg.layer_kind(i) for i in range(43)]
    assert kinds.count("sliding") == 2 and kinds.count("csa") == 21 and kinds.count("hca") == 20
    assert (cfg.index_topk, cfg.index_n_heads, cfg.index_head_dim) == (512, 64, 128)
    assert (cfg.n_routed_experts, cfg.experts_per_token, cfg.num_hash_layers) == (256, 6, 3)
    assert cfg.yarn.factor == 16 and cfg.yarn.original_max_position == 65536
    assert cfg.compress_rope_theta == 160000 and cfg.rope_theta == 10000
    assert cfg.expert_dtype == "fp4" and cfg.weight_fp8 and cfg.scale_fmt == "ue8m0"
    assert cfg.routed_scaling_factor == 1.5 and cfg.scoring_func == "sqrtsoftplus" and cfg.swiglu_limit == 10.0
    assert cfg.o_groups == 8 and cfg.o_lora_rank == 1024 and cfg.q_lora_rank == 1024 and cfg.window == 128
    lo, hi = yarn_low_high(cfg, cfg.compress_rope_theta)
    assert 0 <= lo < hi <= 63
    # bf16 KV per token, amortised: 21 CSA * (512+128)/4 + 20 HCA * 512/128 entries of 2 bytes
    assert cfg.kv_bytes_per_token() == (21 * (512 + 128) / 4 + 20 * 512 / 128) * 2


def test_official_inference_config_matches():
    if not (REF / "inference_config.json").exists():
        pytest.skip("reference config not present")
    a = v4_from_hf(_flash())
    b = v4_from_hf(json.loads((REF / "inference_config.json").read_text()))
    for f in ("hidden_size", "num_layers", "num_heads", "compress_ratios", "index_topk", "num_hash_layers",
              "routed_scaling_factor", "yarn", "expert_dtype", "window", "moe_intermediate_size"):
        assert getattr(a, f) == getattr(b, f), f


def test_refuses_later_dialects():
    cfg = _flash()
    with pytest.raises(BadModelFile, match="0731"):
        v4_from_hf(cfg | {"compress_ratios": cfg["compress_ratios"][:43] + [0, 0, 0]})
    with pytest.raises(BadModelFile, match="V4.1"):
        v4_from_hf(cfg | {"engram_layer_ids": [1, 15]})
