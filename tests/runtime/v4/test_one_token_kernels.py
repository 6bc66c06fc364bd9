"""The int8 decode step through the V4 C kernels (`one_token.py`, `v4_decode.c`) against the torch ops it
replaces: greedy tokens on a fixed prompt set, each kernel against its torch form, the indexer's tie rule,
fewer ATen calls, and bad expert ids refused with a clear error."""

from __future__ import annotations

import copy
import ctypes

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from dsv4.runtime.deepseek_v4.common import stable_topk
from dsv4.runtime.deepseek_v4.one_token import PLAN_SLOTS
from dsv4.runtime.deepseek_v4.v4_kernels import v4_kernels
from dsv4.runtime.deepseek_v4.weights import PackedWeight, head_logits
from dsv4.runtime.layers.embedding import REFINE_TOP

from .tiny import random_model, tiny_config

pytestmark = pytest.mark.skipif(v4_kernels() is None, reason="no C compiler builds the V4 kernels here")

PROMPTS = [list(range(5, 45)), [7, 7, 7, 7, 9, 9, 9, 9] * 4, [129279, 0, 65000, 1, 2, 3, 4, 128000, 17, 99000, 5]]


def greedy(model, prompt: list[int], steps: int) -> tuple[list[int], list[torch.Tensor]]:
    cache = model.new_cache()
    logits = model.last_logits(torch.tensor(prompt), cache)
    tokens, trail = [int(logits.argmax())], []
    for _ in range(steps):
        logits = model.last_logits(torch.tensor(tokens[-1:]), cache)
        trail.append(logits)
        tokens.append(int(logits.argmax()))
    return tokens, trail


@pytest.fixture(scope="module")
def packed():
    # every layer kind (sliding, CSA with the indexer choosing 3 of its entries, HCA), window 8, so 40 decode
    # steps cross several compressions and the window ring
    model = random_model(tiny_config(layers=(0, 4, 8, 4), window=8, topk=3), seed=5)
    model.pack_weights("int8")
    return model


def test_greedy_tokens_are_the_same_with_the_kernels_on_and_off(packed):
    for prompt in PROMPTS:
        assert packed.use_decode_kernels(False) is False
        ref, ref_logits = greedy(packed, prompt, 40)
        assert packed.use_decode_kernels(True) is True
        got, got_logits = greedy(packed, prompt, 40)
        assert got == ref, prompt
        # the refined best candidates are float32 products: only the int8 products' summation order differs
        assert max((a - b).abs().max().item() for a, b in zip(got_logits, ref_logits)) < 0.05


def test_a_deep_copy_runs_on_its_own_weights(packed):
    clone = copy.deepcopy(packed)
    table = clone.layers[1].one_token.w13
    assert table.q[0] == clone.layers[1].ffn.experts.packed[0][0].q.data_ptr()
    assert greedy(clone, PROMPTS[0], 6)[0] == greedy(packed, PROMPTS[0], 6)[0]
    # the copy's layer plans point at the copy's tensors and pointer tables, not the original's
    for block in clone.layers:
        plan = dict(zip(PLAN_SLOTS, block.one_token.plan.tolist()))
        assert plan["xp_q"] == block.attn.x_proj.q.data_ptr() and plan["sink"] == block.attn.attn_sink.data_ptr()
        assert plan["w13_q"] == ctypes.addressof(block.one_token.w13.q)
        assert plan["buf_proj"] == block.one_token.proj.data_ptr()


def aten_calls(model, prompt: list[int], steps: int = 3) -> int:
    cache = model.new_cache()
    model.last_logits(torch.tensor(prompt), cache)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            model.last_logits(torch.tensor([3]), cache)
    return sum(1 for e in prof.events() if e.name.startswith("aten::"))


def test_the_kernels_dispatch_far_fewer_aten_calls(packed):
    packed.use_decode_kernels(False)
    torch_ops = aten_calls(packed, PROMPTS[0])
    packed.use_decode_kernels(True)
    kernels = aten_calls(packed, PROMPTS[0])
    assert kernels * 4 < torch_ops, (kernels, torch_ops)


def test_int8_product_matches_the_packed_weight():
    k = v4_kernels()
    g = torch.Generator().manual_seed(0)
    for n, kk in ((64, 48), (33, 100), (512, 1024)):  # K = 100: the kernel's scalar tail
        w = PackedWeight(torch.randn(n, kk, generator=g), "int8")
        x = torch.randn(1, kk, generator=g)
        exact = x.bfloat16().float() @ (w.q.float() * w.scale.float()[:, None]).T
        # ATen's kernel as the reference where it handles K (it returns NaN for K = 100 on this CPU)
        ref = w(x) if kk % 16 == 0 else exact.bfloat16().float()
        ours = k.gemv(w, x)
        if kk % 16 == 0:  # ATen's order of operations: the same bits
            assert torch.equal(ours, ref)
        else:  # the tail in another order: within one bf16 step
            assert ((ours - ref).abs() <= ref.abs() * 2.0 ** -7).all()


def test_indexer_top_k_keeps_the_tie_rule():
    k = v4_kernels()
    g = torch.Generator().manual_seed(1)
    heads, hd, n = 2, 16, 40
    base = torch.randn(8, hd, generator=g)
    keys = base[torch.randint(0, 8, (n,), generator=g)].contiguous()  # 8 distinct keys, each repeated: many ties
    q, w = torch.randn(heads * hd, generator=g), torch.rand(heads, generator=g)
    score = (w[:, None] * (q.view(heads, hd) @ keys.T).relu()).sum(0)
    for top in (1, 5, 17, 40):
        assert k.indexer_topk(q, w, 1.0, heads, keys, top).tolist() == stable_topk(score[None], top)[0].tolist()
    zeros = torch.zeros(n, hd)  # every score 0.0: the lowest indices, in order
    assert k.indexer_topk(q, w, 1.0, heads, zeros, 6).tolist() == [0, 1, 2, 3, 4, 5]


def test_attention_and_mhc_match_their_torch_forms():
    model = random_model(tiny_config(vocab=300), seed=2)
    k = v4_kernels()
    g = torch.Generator().manual_seed(3)
    attn = model.layers[2].attn  # HCA
    H, D = attn.n_heads, attn.head_dim
    q, keys, comp = torch.randn(1, H, D, generator=g), torch.randn(7, D, generator=g), torch.randn(5, D, generator=g)
    with torch.no_grad():
        ref = attn.rotary.apply(attn.attend(q, keys, None, comp, None), attn.rotary.phases(torch.tensor([30])), inverse=True)
        got = k.attend_one(q.contiguous(), H, keys[:6], keys[6:], comp, None, attn.attn_sink, attn.scale,
                           attn.rotary.dim, attn.rotary.inv_freq, 30)
        assert (got.view(1, H, D) - ref).abs().max() < 1e-5
        idx = torch.tensor([4, 0, 2])  # CSA: the chosen entries
        ref = attn.attend(q, keys, None, comp[idx][None], None)
        got = k.attend_one(q.contiguous(), H, None, keys, comp, idx, attn.attn_sink, attn.scale, 0, attn.rotary.inv_freq, 0)
        assert (got.view(1, H, D) - ref).abs().max() < 1e-5

        block = model.layers[1]
        h = torch.randn(1, 4, model.config.hidden_size, generator=g)
        y, post, comb = block.hc_ffn.pre(h)
        x, mix = k.mhc_pre(h, block.hc_ffn.fn, block.hc_ffn.base, block.hc_ffn.scale, block.hc_ffn.norm_eps,
                           block.hc_ffn.eps, block.hc_ffn.iters, block.ffn_norm.weight)
        assert (x - block.ffn_norm(y)).abs().max() < 1e-5
        assert (mix[:4] - post[0]).abs().max() < 1e-6 and (mix[4:] - comb.flatten()).abs().max() < 1e-6
        o = torch.randn(1, model.config.hidden_size, generator=g)
        assert (k.mhc_post(o, h, mix) - block.hc_ffn.post(o, h, post, comb)).abs().max() < 1e-5


def test_gate_matches_the_module_for_learned_and_hashed_routing():
    model = random_model(tiny_config(vocab=300, experts=8, top=3), seed=4)
    k = v4_kernels()
    x = torch.randn(1, model.config.hidden_size, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        for layer, token in ((0, 17), (2, 17)):  # layer 0 hashed, layer 2 learned
            gate = model.layers[layer].ffn.gate
            w_ref, idx_ref = gate(x, torch.tensor([token]))
            idx, w = k.moe_gate(x, gate.weight, gate.func, None if gate.hashed else gate.bias,
                                gate.tid2eid[token] if gate.hashed else None, gate.topk, gate.norm_topk, gate.scale)
            assert idx.tolist() == idx_ref[0].tolist()
            assert (w - w_ref[0]).abs().max() < 1e-5


def test_an_out_of_range_hashed_expert_is_refused_with_a_clear_error():
    model = random_model(tiny_config(vocab=300), seed=6)
    model.pack_weights("int8")
    cache = model.new_cache()
    model.last_logits(torch.tensor([1, 2, 3]), cache)
    model.layers[0].ffn.gate.tid2eid[9] = 99  # a corrupt hash table: 4 experts
    with pytest.raises(ValueError, match="expert ids"):
        model.last_logits(torch.tensor([9]), cache)


def test_only_int8_weights_take_the_kernels():
    """The fp32 (exact) model and the other packed formats keep the torch ops, so their numerics are unchanged."""
    model = random_model(tiny_config(vocab=300), seed=7)
    assert model.use_decode_kernels(True) is False and all(b.one_token is None for b in model.layers)
    model.pack_weights("bf16")
    assert model.use_decode_kernels(True) is False and model.kernel_head is None


def test_head_logits_refine_the_best_candidates_like_the_torch_head():
    k = v4_kernels()
    g = torch.Generator().manual_seed(8)
    base = torch.randn(700, 64, generator=g)
    w = PackedWeight(torch.cat((base, base[:300])), "int8")  # 300 rows twice: exact ties in the coarse logits
    for seed in range(4):
        h = torch.randn(1, 64, generator=torch.Generator().manual_seed(seed))
        coarse = w(h)  # ATen's int8 product
        top = stable_topk(coarse, REFINE_TOP)[0]  # the kernel's rule: ties to the lower row
        got = k.head_logits(w, h, REFINE_TOP)
        rest = torch.ones(coarse.shape[1], dtype=torch.bool)
        rest[top] = False
        assert torch.equal(got[0, rest], coarse[0, rest])  # the coarse logits: the same bits
        # the refined ones: float32 products of the dequantised rows, summed in another order than bmm's
        assert (got[0, top] - (w.rows(top) @ h[0])).abs().max() < 1e-5
    # torch's head (whose topk may keep another of tied rows) where no tie crosses the cut: the same candidates
    distinct, compared = PackedWeight(base, "int8"), 0
    for seed in range(4):
        h = torch.randn(1, 64, generator=torch.Generator().manual_seed(seed))
        ranked = distinct(h)[0].sort(descending=True).values
        if ranked[REFINE_TOP - 1] != ranked[REFINE_TOP]:
            assert (head_logits(distinct, h) - k.head_logits(distinct, h, REFINE_TOP)).abs().max() < 1e-5
            compared += 1
    assert compared


def test_collapse_matches_the_model_head():
    model = random_model(tiny_config(vocab=300), seed=9)
    k = v4_kernels()
    h = torch.randn(1, model.config.hc_mult, model.config.hidden_size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        cfg = model.config
        got = k.collapse(h, model.hc_head_fn, model.hc_head_base, model.hc_head_scale, cfg.rms_norm_eps, cfg.hc_eps,
                         model.norm.weight)
        assert (got - model.collapse(h)).abs().max() < 1e-5


def test_moe_matches_the_packed_module_for_learned_and_hashed_routing():
    model = random_model(tiny_config(vocab=300, experts=8, top=3), seed=10)
    model.pack_weights("int8")
    k = v4_kernels()
    x = torch.randn(1, model.config.hidden_size, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        for layer in (0, 2):  # hashed, learned
            moe = model.layers[layer].ffn
            gate, shared = moe.gate, moe.shared_experts
            ids = torch.tensor([17])
            got = k.moe(x, gate.weight, gate.func, None if gate.hashed else gate.bias, gate.tid2eid if gate.hashed else None,
                        ids, gate.topk, gate.norm_topk, gate.scale, model.layers[layer].one_token.w13,
                        model.layers[layer].one_token.w2, moe.experts.packed[0][1].q.shape[1], shared.w2.packed.q.shape[1],
                        True, moe.experts.limit)
            # the module's bf16-rounded products summed in another order (experts batched, then stacked)
            assert (got - moe(x, ids)).abs().max() < 1e-4
        with pytest.raises(ValueError, match="token id"):
            gate = model.layers[0].ffn.gate
            k.moe(x, gate.weight, gate.func, None, gate.tid2eid, torch.tensor([300]), gate.topk, gate.norm_topk, gate.scale,
                  model.layers[0].one_token.w13, model.layers[0].one_token.w2, moe.experts.packed[0][1].q.shape[1],
                  shared.w2.packed.q.shape[1], True, moe.experts.limit)


def test_the_kernels_exp_is_within_two_ulp_of_torch():
    """The softmaxes' and SiLUs' e^x (Cephes' polynomial, 16 lanes and the scalar tail)."""
    x = torch.cat((torch.linspace(-87.0, 0.0, 100_003), -torch.rand(1001, generator=torch.Generator().manual_seed(0)) * 3))
    out = torch.empty_like(x)
    v4_kernels().c.v4_exp(x.data_ptr(), out.data_ptr(), x.numel())
    ref = torch.exp(x.double())
    assert ((out.double() - ref).abs() / ref).max() < 2.5e-7
