"""DeepSeek-V4 runtime benchmark (CPU, random weights): prefill and decode speed at several context
lengths for our model with fp32 weights (exact mode, the parity reference) and with packed int8 weights
(what `--precision auto` loads), KV bytes per token measured from the cache tensors next to a plain MHA
cache of the same width, and the same workload through transformers' DeepseekV4ForCausalLM (same weights,
fp32 and bf16) as ratios.

    .venv/bin/python evals/v4_bench.py [--lengths 2048 8192 32768] [--hf-lengths 2048 8192] [--decode-steps 16]
        [--weights fp32 int8] [--hf-dtypes fp32 bf16] [--rounds 3]

With int8 weights it also measures the decode floor (issue 19): after one prefill per context, `--rounds`
rounds decode the same cache snapshot with the one-token C kernels off (torch ops) and on, each round next to
the floor its weight reads set (bytes per token over the LM head's streaming rate, measured in that round
with the faster of the two int8 kernels), and counts ATen calls per token with torch.profiler.

Writes evals/results/v4_bench.json. Not a test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from pathlib import Path
from statistics import median

import torch
from torch.profiler import ProfilerActivity, profile

from dsv4.runtime.deepseek_v4.checkpoint import hf_to_native
from dsv4.runtime.deepseek_v4.model import DeepseekV4ForCausalLM
from dsv4.runtime.deepseek_v4.config import DeepseekV4Config, V4Yarn
from dsv4.runtime.deepseek_v4.v4_kernels import v4_kernels

OUT = Path(__file__).parent / "results" / "v4_bench.json"
CHUNK = 512
WARMUP_STEPS = 2  # untimed decode steps after prefill, for every engine alike


def bench_config(vocab: int) -> DeepseekV4Config:
    return DeepseekV4Config(
        architecture="deepseek_v4", vocab_size=vocab, hidden_size=1024, num_layers=8, num_heads=8, head_dim=256,
        rope_head_dim=64, q_lora_rank=256, o_groups=4, o_lora_rank=256, window=128,
        compress_ratios=(0, 4, 128, 4, 128, 4, 128, 0), moe_intermediate_size=256, n_routed_experts=32,
        n_shared_experts=1, experts_per_token=4, num_hash_layers=2, index_n_heads=8, index_head_dim=64,
        index_topk=64, yarn=V4Yarn(16.0, 4096, 32.0, 1.0), routed_scaling_factor=1.5, max_position=1 << 17,
    )


def randomise(model: DeepseekV4ForCausalLM, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    with torch.no_grad():
        for name, p in list(model.named_parameters()) + list(model.named_buffers()):
            if name.endswith("tid2eid"):
                p.copy_(torch.randint(0, cfg.n_routed_experts, p.shape, generator=g))
            elif name.endswith("norm.weight"):
                p.fill_(1.0)
            elif name.endswith(".scale") or name == "hc_head_scale":
                p.fill_(0.5)
            else:
                std = 0.5 / max(p.shape[-1], 1) ** 0.5 if p.dim() >= 2 else 0.1
                p.copy_(std * torch.randn(p.shape, generator=g))


def hf_model(ours: DeepseekV4ForCausalLM):
    from transformers import DeepseekV4Config as HFConfig
    from transformers import DeepseekV4ForCausalLM as HFModel

    c = ours.config
    kinds = {0: "sliding_attention", 4: "compressed_sparse_attention", 128: "heavily_compressed_attention"}
    hcfg = HFConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, moe_intermediate_size=c.moe_intermediate_size,
        num_hidden_layers=c.num_layers, num_attention_heads=c.num_heads, head_dim=c.head_dim,
        q_lora_rank=c.q_lora_rank, o_groups=c.o_groups, o_lora_rank=c.o_lora_rank, n_routed_experts=c.n_routed_experts,
        num_experts_per_tok=c.experts_per_token, n_shared_experts=1, layer_types=[kinds[r] for r in c.compress_ratios],
        mlp_layer_types=["hash_moe"] * c.num_hash_layers + ["moe"] * (c.num_layers - c.num_hash_layers),
        sliding_window=c.window, index_n_heads=c.index_n_heads, index_head_dim=c.index_head_dim,
        index_topk=c.index_topk, partial_rotary_factor=c.rope_head_dim / c.head_dim,
        rope_parameters={"rope_type": "yarn", "factor": c.yarn.factor, "beta_fast": c.yarn.beta_fast,
                         "beta_slow": c.yarn.beta_slow, "original_max_position_embeddings": c.yarn.original_max_position,
                         "rope_theta": c.rope_theta},
        compress_rope_theta=c.compress_rope_theta, max_position_embeddings=c.max_position,
        routed_scaling_factor=c.routed_scaling_factor,
    )
    hf = HFModel(hcfg).eval()
    import re

    params = dict(ours.named_parameters()) | dict(ours.named_buffers())
    with torch.no_grad():
        for name, t in hf.state_dict(keep_vars=True).items():
            for nat, view in hf_to_native([(name, t)]):
                view.copy_(params[re.sub(r"\.hc_(attn|ffn)_(fn|base|scale)$", r".hc_\1.\2", nat)])
    return hf


def packed_copy(model: DeepseekV4ForCausalLM, fmt: str) -> DeepseekV4ForCausalLM:
    if fmt == "fp32":
        return model
    fast = copy.deepcopy(model)
    fast.pack_weights(fmt)
    return fast


def decode_weight_bytes(model: DeepseekV4ForCausalLM) -> dict:
    """Bytes of packed weights one decode step reads: every layer's projections, its k routed experts and the
    shared one, and the LM head (the embedding row, norms, gates and mHC are left out: under 1 MB)."""
    k = model.config.experts_per_token
    layers = 0
    for blk in model.layers:
        a = blk.attn
        layers += a.x_proj.nbytes() + a.wq_b.packed.nbytes() + a.wo_b.packed.nbytes() + sum(g.nbytes() for g in a.wo_a_groups)
        if a.ratio == 4:
            layers += a.indexer.wq_b.packed.nbytes()
        w13, w2 = blk.ffn.experts.packed[0]
        layers += k * (w13.nbytes() + w2.nbytes()) + blk.ffn.shared_experts.w13.nbytes() + blk.ffn.shared_experts.w2.packed.nbytes()
    return {"layers": layers, "lm_head": model.head_packed.nbytes(), "total": layers + model.head_packed.nbytes()}


def head_stream_gb_s(model: DeepseekV4ForCausalLM, reps: int = 20, kernel: bool = False) -> float:
    """How fast the packed kernel (ATen's, or the V4 C kernel with `kernel`) streams a table far bigger than
    the caches: the LM head alone."""
    h = torch.randn(1, model.config.hidden_size)
    head = (lambda x: v4_kernels().gemv(model.head_packed, x)) if kernel else model.head_packed
    for _ in range(3):
        head(h)
    t0 = time.perf_counter()
    for _ in range(reps):
        head(h)
    return model.head_packed.nbytes() * reps / (time.perf_counter() - t0) / 1e9


def decode_steps_ms(model, cache, tok: int, steps: int) -> tuple[list[float], int]:
    """Per-step wall times (ms) of `steps` greedy decode steps after WARMUP_STEPS untimed ones."""
    for _ in range(WARMUP_STEPS):
        tok = int(model.last_logits(torch.tensor([tok]), cache).argmax())
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        tok = int(model.last_logits(torch.tensor([tok]), cache).argmax())
        times.append(1000 * (time.perf_counter() - t0))
    return times, tok


def aten_calls_per_token(model, cache, tok: int, steps: int = 4) -> dict:
    """ATen calls of a decode step: every op the profiler records, and the top-level ones (those not called
    by another ATen op: what Python dispatches)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            tok = int(model.last_logits(torch.tensor([tok]), cache).argmax())
    aten = [e for e in prof.events() if e.name.startswith("aten::")]
    top = [e for e in aten if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")]
    return {"all": len(aten) / steps, "top_level": len(top) / steps}


def floor_rounds(model: DeepseekV4ForCausalLM, ids: torch.Tensor, rounds: int, steps: int) -> dict:
    """int8 decode with the one-token kernels off and on, from the same prefilled cache, against the floor."""
    cache = model.new_cache()
    tok = int(model.last_logits(ids, cache, chunk=CHUNK).argmax())
    weight_bytes = decode_weight_bytes(model)["total"]
    variants = {"torch_ops": False, "kernels": True}
    out: dict = {v: {"rounds": []} for v in variants}
    for r in range(rounds):
        load = os.getloadavg()[0]
        stream = max(head_stream_gb_s(model), head_stream_gb_s(model, kernel=True))
        floor_ms = weight_bytes / stream / 1e6
        for name, on in variants.items():
            model.use_decode_kernels(on)
            times, _ = decode_steps_ms(model, cache.snapshot(), tok, steps)
            out[name]["rounds"].append({"ms_per_token_median": median(times), "ms_per_token_mean": sum(times) / steps,
                                        "floor_ms": floor_ms, "stream_gb_s": stream, "load_average_1m": load})
    for name, on in variants.items():
        model.use_decode_kernels(on)
        rs = out[name]["rounds"]
        out[name] |= {"ms_per_token": median(x["ms_per_token_median"] for x in rs),
                      "floor_ms": median(x["floor_ms"] for x in rs),
                      "vs_floor": median(x["ms_per_token_median"] / x["floor_ms"] for x in rs),
                      "aten_calls_per_token": aten_calls_per_token(model, cache.snapshot(), tok)}
    model.use_decode_kernels(True)
    out["speedup"] = out["torch_ops"]["ms_per_token"] / out["kernels"]["ms_per_token"]
    return out


def run_ours(model, ids: torch.Tensor, steps: int) -> dict:
    cache = model.new_cache()
    t0 = time.perf_counter()
    logits = model.last_logits(ids, cache, chunk=CHUNK)
    prefill = time.perf_counter() - t0
    kv = cache.kv_bytes()
    tok = int(logits.argmax())
    for _ in range(WARMUP_STEPS):
        tok = int(model.last_logits(torch.tensor([tok]), cache).argmax())
    t0 = time.perf_counter()
    for _ in range(steps):
        tok = int(model.last_logits(torch.tensor([tok]), cache).argmax())
    decode = time.perf_counter() - t0
    return {"prefill_s": prefill, "prefill_tok_s": len(ids) / prefill, "decode_ms_per_token": 1000 * decode / steps,
            "decode_tok_s": steps / decode, "cache_bytes": kv}


def run_hf(hf, ids: torch.Tensor, steps: int) -> dict:
    from transformers import DynamicCache

    cache = DynamicCache(config=hf.config)
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(ids), CHUNK):
            out = hf(ids[None, s:s + CHUNK], past_key_values=cache, use_cache=True)
    prefill = time.perf_counter() - t0
    tok = int(out.logits[0, -1].argmax())
    with torch.no_grad():
        for _ in range(WARMUP_STEPS):
            tok = int(hf(torch.tensor([[tok]]), past_key_values=cache, use_cache=True).logits[0, -1].argmax())
    t0 = time.perf_counter()
    with torch.no_grad():
        for _ in range(steps):
            tok = int(hf(torch.tensor([[tok]]), past_key_values=cache, use_cache=True).logits[0, -1].argmax())
    decode = time.perf_counter() - t0
    return {"prefill_s": prefill, "prefill_tok_s": len(ids) / prefill, "decode_ms_per_token": 1000 * decode / steps,
            "decode_tok_s": steps / decode}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", type=int, nargs="+", default=[2048, 8192, 32768])
    ap.add_argument("--hf-lengths", type=int, nargs="*", default=[2048, 8192])
    ap.add_argument("--decode-steps", type=int, default=16)
    ap.add_argument("--vocab", type=int, default=129280)
    ap.add_argument("--weights", nargs="+", default=["fp32", "int8"], help="our weight formats (fp32 = exact mode)")
    ap.add_argument("--hf-dtypes", nargs="*", default=["fp32", "bf16"])
    ap.add_argument("--threads", type=int, default=1,
                    help="intra-op threads (1 by default: torch's flush-denormal flag reaches only the calling thread)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the int8 decode-floor comparison (0: skip)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    # random weights produce denormal floats, which are 10-30x slower on x86 (for both implementations)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    cfg = bench_config(args.vocab)
    model = DeepseekV4ForCausalLM(cfg).eval()
    randomise(model)
    ours = {fmt: packed_copy(model, fmt) for fmt in args.weights}
    hf = {}
    if args.hf_lengths:
        base = hf_model(model)
        for dt in args.hf_dtypes:
            hf[dt] = base if dt == "fp32" else copy.deepcopy(base).to(torch.bfloat16)
    c = cfg
    mha_bytes = 2 * c.num_layers * c.num_heads * c.head_dim * 4  # fp32 K and V for every head, every layer
    rows = []
    ids_all = torch.randint(0, c.vocab_size, (max(args.lengths),), generator=torch.Generator().manual_seed(1))
    for n in args.lengths:
        ids = ids_all[:n]
        row: dict = {"context": n, "ours": {}}
        for fmt, m in ours.items():
            r = run_ours(m, ids, args.decode_steps)
            kv = r.pop("cache_bytes")
            row["ours"][fmt] = r
        total = sum(kv.values())  # the cache holds the same tensors whatever the weight format
        row |= {"kv_bytes_total": total, "kv_bytes_per_token": total / n,
                "kv_bytes_per_token_amortised": (kv["compressed"] + kv["index_keys"]) / n,
                "mha_bytes_per_token": mha_bytes, "kv_fraction_of_mha": total / n / mha_bytes, "kv_parts": kv}
        if hf and n in args.hf_lengths:
            row["transformers"] = {dt: run_hf(m, ids, args.decode_steps) for dt, m in hf.items()}
            row["decode_speedup"] = {f"{fmt}_vs_hf_{dt}": h["decode_ms_per_token"] / r["decode_ms_per_token"]
                                     for fmt, r in row["ours"].items() for dt, h in row["transformers"].items()}
            row["prefill_speedup"] = {f"{fmt}_vs_hf_{dt}": h["prefill_s"] / r["prefill_s"]
                                      for fmt, r in row["ours"].items() for dt, h in row["transformers"].items()}
        if "int8" in ours and args.rounds and v4_kernels() is not None:  # without a C compiler: nothing to compare
            row["int8_decode_floor"] = floor_rounds(ours["int8"], ids, args.rounds, args.decode_steps)
        rows.append(row)
        print(json.dumps(row), flush=True)
    lo, hi = rows[0], rows[-1]
    span = (hi["context"] - lo["context"]) / 1000
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "config": {"hidden": c.hidden_size, "layers": c.num_layers, "kinds": list(c.compress_ratios), "heads": c.num_heads,
                   "head_dim": c.head_dim, "experts": c.n_routed_experts, "top_k_experts": c.experts_per_token,
                   "window": c.window, "index_topk": c.index_topk, "vocab": c.vocab_size, "weights": args.weights,
                   "numerics": c.numerics, "prefill_chunk": CHUNK, "params": sum(p.numel() for p in model.parameters())},
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads()},
        "decode_steps": args.decode_steps,
        "rows": rows,
        "decode_slope_ms_per_1k_context": {
            fmt: (hi["ours"][fmt]["decode_ms_per_token"] - lo["ours"][fmt]["decode_ms_per_token"]) / span
            for fmt in ours} if span else None,  # one --lengths value: no slope
        "decode_time_ratio_longest_vs_shortest": {
            fmt: hi["ours"][fmt]["decode_ms_per_token"] / lo["ours"][fmt]["decode_ms_per_token"] for fmt in ours},
        "context_ratio_longest_vs_shortest": hi["context"] / lo["context"],
    }
    for fmt, m in ours.items():
        if fmt != "fp32":  # the floor a decode step cannot go below: its weight reads at streaming speed
            wb, bw = decode_weight_bytes(m), head_stream_gb_s(m)
            result.setdefault("decode_weight_reads", {})[fmt] = {
                "bytes_per_token": wb, "stream_gb_s": bw, "floor_ms_per_token": wb["total"] / bw / 1e6}
            if fmt == "int8" and v4_kernels() is not None:
                kbw = head_stream_gb_s(m, kernel=True)
                result["decode_weight_reads"][fmt] |= {"stream_gb_s_v4_kernel": kbw,
                                                       "floor_ms_per_token_v4_kernel": wb["total"] / kbw / 1e6}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=2))


if __name__ == "__main__":
    main()
