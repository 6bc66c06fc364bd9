"""A V4 checkpoint's FP8/FP4 weights kept quantised (what CUDA loads) against the same checkpoint de-quantised at
load (what the CPU loads): the references give the same logits bit for bit in prefill, the fused dequant matmuls
(the Triton interpreter on CPU tensors) within float32 rounding, and the packed model around the kept weights
within bf16 rounding."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dsv4.kernels import dispatch
from dsv4.runtime.deepseek_v4.checkpoint import load_v4
from dsv4.runtime.deepseek_v4.quantised import CheckpointWeight, StackedWeights, kept_bytes, pack_around_kept
from dsv4.runtime.engine.device import quantised_weight_formats
from tests.runtime.v4.checkpoint_writer import write_official
from tests.runtime.v4.tiny import random_model, tiny_config

from .conftest import interpreter, needs_triton

KEEP = frozenset({"fp8", "fp4"})


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("v4_fp8")
    cfg = tiny_config(vocab=64, layers=(0, 4, 8), window=8, topk=3)  # window-only, CSA and HCA-style layers
    write_official(random_model(cfg, seed=3), folder, shards=2)
    return folder


def token_ids(n: int) -> torch.Tensor:
    return torch.randint(0, 64, (n,), generator=torch.Generator().manual_seed(5))


def test_kept_weights_replace_the_float_copies(checkpoint) -> None:
    model = load_v4(checkpoint, keep=KEEP)
    attn, experts = model.layers[1].attn, model.layers[1].ffn.experts
    assert isinstance(attn.wq_a.packed, CheckpointWeight) and attn.wq_a.packed.fmt == "fp8"
    assert attn.wq_a.weight.numel() == 0
    assert attn.wo_a.packed is None and attn.wo_a.weight.numel() > 0  # bf16 in the reference: de-quantised
    w13, w2 = experts.packed[0]
    assert isinstance(w13, CheckpointWeight) and w13.fmt == "fp4" and w13.out_features == 2 * model.config.moe_intermediate_size
    assert w2.fmt == "fp4" and experts.w1.numel() == 0
    floats = sum(p.numel() * 4 for p in load_v4(checkpoint).parameters())
    assert sum(p.numel() * 4 for p in model.parameters()) + kept_bytes(model) < floats


def test_fp8_experts_whose_rows_split_a_scale_block_stay_two_matrices(tmp_path) -> None:
    cfg = tiny_config(vocab=64, layers=(0,), inter=32)
    write_official(random_model(cfg, seed=2), tmp_path, shards=1, expert_dtype="fp8")
    model, full = load_v4(tmp_path, keep=KEEP), load_v4(tmp_path)
    w13, w2 = model.layers[0].ffn.experts.packed[0]
    assert isinstance(w13, StackedWeights) and w2.fmt == "fp8"  # 32 rows of w1 end inside a 128-row block
    ids = token_ids(9)
    assert torch.equal(model(ids), full(ids))


def test_the_references_give_the_dequantised_logits(checkpoint) -> None:
    kept, full = load_v4(checkpoint, keep=KEEP), load_v4(checkpoint)
    ids = token_ids(21)
    assert torch.equal(kept(ids), full(ids))  # the same de-quantised values, multiplied the same way
    ck, cf = kept.new_cache(), full.new_cache()
    kept(ids[:15], ck), full(ids[:15], cf)
    for i in range(15, 21):  # decode: the kept experts take bf16 activations, as packed experts do
        torch.testing.assert_close(kept(ids[i:i + 1], ck), full(ids[i:i + 1], cf), rtol=1e-2, atol=5e-3)


@needs_triton
@interpreter
def test_the_fused_dequant_matmuls_give_the_dequantised_logits(checkpoint) -> None:
    kept, full = load_v4(checkpoint, keep=KEEP), load_v4(checkpoint)
    ids = token_ids(13)
    want = full(ids)
    with dispatch.kernels_enabled(True, on_cpu=True):
        got = kept(ids)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert torch.equal(got.argmax(-1), want.argmax(-1))
    assert not torch.equal(got, want)  # the kernels ran: their sums round differently


def test_packing_around_the_kept_weights(checkpoint) -> None:
    kept, full = load_v4(checkpoint, keep=KEEP), load_v4(checkpoint)
    pack_around_kept(kept, "bf16")
    full.pack_weights("bf16")
    assert kept.weight_format == "bf16" and kept.head.weight.numel() == 0
    assert kept.layers[1].attn.x_proj is None and kept.layers[1].attn.wo_a_groups  # kept: no fused projection
    assert kept.layers[1].attn.compressor.wkv.packed.fmt == "bf16"
    ids = token_ids(21)
    got, want = kept(ids), full(ids)
    torch.testing.assert_close(got, want, rtol=5e-2, atol=5e-2)
    assert (got.argmax(-1) == want.argmax(-1)).float().mean() > 0.9


def test_the_cpu_and_the_exact_mode_keep_nothing() -> None:
    assert quantised_weight_formats(torch.device("cpu"), "bf16") == frozenset()
    assert quantised_weight_formats(None, "bf16") == frozenset()
    assert quantised_weight_formats(torch.device("cuda"), "fp32") == frozenset()


def test_official_numerics_loads_dequantised(checkpoint) -> None:
    model = load_v4(checkpoint, keep=KEEP, numerics="official")
    assert kept_bytes(model) == 0 and model.layers[1].attn.wq_a.weight.numel() > 0


def test_the_cpu_engine_path_never_imports_triton(checkpoint) -> None:
    """Loading (through the keep/device decisions), decoding and demoting to the CPU warm tier import no kernel file."""
    code = ("import sys, torch; from dsv4.runtime.deepseek_v4.engine import V4Engine; "
            "from dsv4.runtime.deepseek_v4.checkpoint import load_v4; "
            "from dsv4.runtime.deepseek_v4.kv_tiers import demote_oldest; "
            "from dsv4.runtime.engine.device import quantised_weight_formats; "
            f"m = load_v4({str(checkpoint)!r}, keep=quantised_weight_formats(torch.device('cpu'), 'bf16')); "
            "c = m.new_cache(); m(torch.arange(400) % 64, c); [demote_oldest(lc, 16) for lc in c.layers]; "
            "m(torch.tensor([3]), c); print('triton' in sys.modules, any(k.startswith('dsv4.kernels.') and "
            "k not in ('dsv4.kernels.dispatch',) for k in sys.modules))")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                         cwd=Path(__file__).resolve().parents[2])
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False False"


def test_a_kept_weight_that_does_not_fit_is_refused() -> None:
    from dsv4.runtime.deepseek_v4.checkpoint import load_native
    from dsv4.runtime.deepseek_v4.quantised import QuantisedTensor
    from dsv4.runtime.errors import BadModelFile

    model = random_model(tiny_config(vocab=64, layers=(0, 4)))
    bad = QuantisedTensor("fp8", torch.zeros(5, 7, dtype=torch.uint8), torch.zeros(1, 1, dtype=torch.uint8))
    with pytest.raises(BadModelFile, match=r"layers.0.attn.wq_a.weight: shape \(5, 7\)"):
        load_native(model, iter([("layers.0.attn.wq_a.weight", bad)]), strict=False)
    with pytest.raises(BadModelFile, match="unexpected tensor"):
        load_native(model, iter([("layers.0.attn.nope.weight", bad)]))
