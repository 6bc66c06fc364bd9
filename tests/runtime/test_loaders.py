"""GGUF reading and dequantisation against the gguf package (llama.cpp's reference Python code)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as Q  # noqa: E402

from dsv4.runtime.loaders.dequant import dequantize  # noqa: E402


@pytest.mark.parametrize("qtype", [Q.Q4_0, Q.Q4_1, Q.Q8_0, Q.F16, Q.BF16])
def test_fast_dequant_matches_gguf(qtype):
    rows = np.random.default_rng(0).standard_normal((8, 256)).astype(np.float32)
    raw = gguf.quants.quantize(rows, qtype)  # (8, bytes per row) uint8
    expected = gguf.quants.dequantize(raw, qtype)
    got = dequantize(raw.reshape(-1).view(np.uint8), int(qtype), (8, 256))
    assert torch.equal(got, torch.from_numpy(np.ascontiguousarray(expected, dtype=np.float32)))


@pytest.mark.parametrize("qtype", [Q.Q4_K, Q.Q6_K, Q.Q5_K])
def test_k_quants_go_through_the_gguf_package(qtype):
    block, size = GGML_QUANT_SIZES[qtype]
    raw = np.random.default_rng(1).integers(0, 255, size=(4, size * 2), dtype=np.uint8)
    raw[:, :2] = 0  # keep the fp16 scales finite
    expected = gguf.quants.dequantize(raw, qtype)
    got = dequantize(raw.reshape(-1), int(qtype), (4, block * 2))
    assert got.shape == (4, block * 2)
    np.testing.assert_array_equal(got.numpy(), expected.astype(np.float32))


def test_reader_agrees_with_gguf_reader(smollm_path):
    from dsv4.runtime.loaders.gguf_file import GGUFFile

    ours = GGUFFile(smollm_path)
    ref = gguf.GGUFReader(smollm_path)
    assert len(ours.tensors) == len(ref.tensors)
    for t in ref.tensors[:20]:
        info = ours.tensors[t.name]
        assert info.ggml_type == int(t.tensor_type) and info.n_elements == t.n_elements
        assert np.array_equal(ours.raw(t.name), t.data.reshape(-1).view(np.uint8))
    assert ours.metadata["tokenizer.ggml.tokens"] == [str(bytes(ref.fields["tokenizer.ggml.tokens"].parts[i]), "utf-8")
                                                     for i in ref.fields["tokenizer.ggml.tokens"].data]
    assert ours.metadata["llama.rope.freq_base"] == 100000.0


@pytest.mark.parametrize("qtype", [Q.Q4_0, Q.Q4_1])
def test_q4_groups_keep_the_stored_integers(qtype):
    from dsv4.runtime.layers.linear import Linear
    from dsv4.runtime.loaders.dequant import q4_groups

    rows = np.random.default_rng(2).standard_normal((64, 256)).astype(np.float32)
    raw = gguf.quants.quantize(rows, qtype).reshape(-1)
    groups = q4_groups(raw, int(qtype), (64, 256))
    exact = dequantize(raw, int(qtype), (64, 256))
    assert torch.equal(groups.dequantize(), exact)
    direct = Linear(256, 64, bias=False, weight_dtype="int4", act_dtype=torch.bfloat16)
    direct.load_shard(0, groups)
    direct.finalize()
    x = torch.randn(5, 256).bfloat16()
    expected = x.float() @ exact.T
    # only the group scales are rounded (to bf16); the integers are the file's
    assert ((direct(x).float() - expected).abs().max() / expected.abs().max()).item() < 0.02
    # from float weights (e.g. an HF checkpoint forced to int4) groups are re-derived from min/max: a new, coarser grid
    requantised = Linear(256, 64, bias=False, weight_dtype="int4", act_dtype=torch.bfloat16)
    requantised.load_shard(0, exact)
    requantised.finalize()
    assert ((requantised(x).float() - expected).abs().max() / expected.abs().max()).item() < 0.15


def test_lm_head_refines_the_best_logits_in_float32():
    from dsv4.runtime.layers.embedding import REFINE_TOP, VocabEmbedding

    torch.manual_seed(0)
    table = torch.randn(4096, 64)
    head = VocabEmbedding(4096, 64, weight_dtype="int8", act_dtype=torch.bfloat16)
    head.load(table)
    hidden = torch.randn(3, 64).bfloat16()
    dequant = head.weight.float() * head.scale.float()[:, None]
    exact = hidden.float() @ dequant.T  # (3, V)
    got = head.logits(hidden)
    top = exact.topk(REFINE_TOP // 2, dim=-1).indices
    # bf16 output would be off by up to 1/256 relative; the refined best ones are exact up to float32 sums
    assert (got.gather(1, top) - exact.gather(1, top)).abs().max().item() < 1e-4
    assert torch.equal(got.argmax(-1), exact.argmax(-1))
