"""The DeepSeek-V4 rows of evals/resume_bench.py: a random int8 V4 (evals/v4_bench.py's config, ~500M params,
hidden 1024, 8 layers) behind a real `V4Engine`, its prefix saved to and restored from the agent's
`SnapshotStore` (runtime/deepseek_v4/kv_export.py, runtime/kv/*), against re-reading the prompt.

The engine is built in-process (no checkpoint on disk: the weights are a function of the config and the seed),
so the model identity's weights digest is taken over a small JSON that names both (`model.json`), and the
tokenizer is the packaged DeepSeek-V4 one.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dsv4.runtime.deepseek_v4.config import DeepseekV4Config
from dsv4.runtime.deepseek_v4.engine import V4Engine
from dsv4.runtime.deepseek_v4.model import DeepseekV4ForCausalLM
from dsv4.runtime.deepseek_v4.tokenizer import load_v4_tokenizer
from dsv4.runtime.engine.loader import LoadedModel
from dsv4.runtime.kv.identity import config_dict

WEIGHTS = "int8"  # what `--precision auto` loads for V4


def random_v4_engine(cfg: DeepseekV4Config, folder: Path, *, context_window: int, threads: int,
                     seed: int = 0) -> V4Engine:
    """A V4Engine over random int8 weights (`randomise` of evals/v4_bench.py: it keeps activations in range)."""
    from v4_bench import randomise  # evals/ is the script's directory, so on sys.path

    model = DeepseekV4ForCausalLM(cfg).eval()
    randomise(model, seed)
    params = sum(p.numel() for p in model.parameters())  # before packing replaces the fp32 weights
    model.pack_weights(WEIGHTS)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text(json.dumps({"random_v4": config_dict(cfg), "seed": seed, "weights": WEIGHTS}))
    loaded = LoadedModel(model=model, tokenizer=load_v4_tokenizer(), config=cfg, path=folder,
                         precision=f"{WEIGHTS} weights, {cfg.numerics} numerics", load_seconds=0.0,
                         checkpoint_info={"format": "random", "dialect": "deepseek_v4", "params": params})
    return V4Engine(loaded, context_window=context_window, threads=threads)


def v4_reference(engine: V4Engine, ids: list[int], prefix: int, prompt: list[int], reread_rounds: int, timed_prefill,
                 peer_round=None) -> tuple[list[float], object, torch.Tensor]:
    """Re-read `prompt` with its chunks ending at `prefix` (the restore point the agent names: the end of the
    system prefix), `reread_rounds` times. The last re-read is the exact reference: a lossless restore of the
    prefix followed by the new tokens computes the same chunks, bit for bit. Returns the times, the snapshot of
    the prefix (exported from that restore point) and the reference logits."""
    engine.attach_prefix_cache(None)
    engine.prefill(ids[:64])  # warm-up: the first forward of a process pays for allocations
    times = []
    for _ in range(reread_rounds):
        t, logits = timed_prefill(engine, prompt, restore_points=[prefix])
        times.append(t)
    return times, engine.export_prefix(prefix), logits


def v4_config_summary(cfg: DeepseekV4Config, engine: V4Engine) -> dict:
    return {"hidden": cfg.hidden_size, "layers": cfg.num_layers, "kinds": list(cfg.compress_ratios),
            "heads": cfg.num_heads, "head_dim": cfg.head_dim, "experts": cfg.n_routed_experts,
            "window": cfg.window, "index_topk": cfg.index_topk, "vocab": cfg.vocab_size, "weights": WEIGHTS,
            "params": engine.loaded.checkpoint_info["params"]}
