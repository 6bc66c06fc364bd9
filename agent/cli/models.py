"""`dsv4-code models list|info|generate|score|install`: look at and run local models outside the agent, a thin adapter
over the runtime's public API.

Heavy imports (torch, the runtime) happen inside the commands, so building the parser costs nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from .errors import EXIT_USAGE, fail, user_error
from .model_install import add_install_parser, run_install

EXIT_OK = 0


def add_models_parser(subparsers: Any) -> None:
    models = subparsers.add_parser("models", help="list, inspect and run local models")
    sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    ls = sub.add_parser("list", help="the named models and whether they are installed")
    ls.add_argument("--json", action="store_true")

    info = sub.add_parser("info", help="architecture, parameters, context window and KV bytes per token")
    info.add_argument("model_spec", metavar="MODEL", help="a GGUF file, an HF checkpoint folder, or a named model")
    info.add_argument("--json", action="store_true")

    gen = sub.add_parser("generate", help="print a continuation of PROMPT")
    gen.add_argument("model_spec", metavar="MODEL")
    gen.add_argument("prompt", metavar="PROMPT", help="the user message ('-' reads standard input)")
    gen.add_argument("--max-tokens", type=int, default=128, metavar="N")
    gen.add_argument("--temperature", type=float, default=0.0, metavar="T", help="0 is greedy and deterministic (default)")
    gen.add_argument("--top-p", type=float, default=1.0, metavar="P")
    gen.add_argument("--top-k", type=int, default=0, metavar="K")
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--raw", action="store_true", help="no chat template: the prompt goes in as it is")
    gen.add_argument("--system", default=None, metavar="TEXT", help="a system message (chat mode)")
    gen.add_argument("--precision", choices=["auto", "int8", "int4", "bf16", "fp32"], default="auto",
                     help="auto: int4 weights where the file stores 4-bit groups, else int8; fp32 is the exact mode")
    gen.add_argument("--context-window", type=int, default=None, metavar="TOKENS")
    gen.add_argument("--json", action="store_true", help="one JSON document with the text and timings")
    gen.add_argument("--numerics", choices=["exact", "official"], default=None,
                     help="DeepSeek-V4 only: exact (no rounding simulation) or official (FP8/FP4 simulations)")
    gen.add_argument("--thinking", action="store_true", help="DeepSeek-V4 only: thinking mode (<think>)")
    gen.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu", help="auto: CUDA when available")
    gen.add_argument("--threads", type=int, default=None, metavar="N",
                     help="CPU threads (default: OMP_NUM_THREADS, else every CPU this process may use)")

    score = sub.add_parser("score", help="per-position logits of a token sequence (the parity tool)")
    score.add_argument("model_spec", metavar="MODEL")
    score.add_argument("--tokens-file", type=Path, required=True, metavar="F.json", help='a JSON list of token ids, or {"tokens": [...]}')
    score.add_argument("--logits-out", type=Path, required=True, metavar="F.npy", help="(T, vocab) float32 logits")
    score.add_argument("--precision", choices=["fp32", "bf16", "int8", "int4", "auto"], default="fp32",
                       help="fp32 from dequantised weights (default), so results compare across implementations")
    score.add_argument("--numerics", choices=["exact", "official"], default="exact",
                       help="DeepSeek-V4 only: exact (default, the parity mode) or official (FP8/FP4 simulations)")
    score.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu", help="auto: CUDA when available")
    score.add_argument("--threads", type=int, default=None, metavar="N",
                     help="CPU threads (default: OMP_NUM_THREADS, else every CPU this process may use)")
    score.add_argument("--json", action="store_true")

    add_install_parser(sub)


def run_models_command(args: argparse.Namespace) -> int:
    from dsv4.runtime.errors import ModelNotFound, RuntimeModelError

    command = {"list": _list, "info": _info, "generate": _generate, "score": _score,
               "install": run_install}[args.models_command]
    try:
        return command(args)
    except (ModelNotFound, RuntimeModelError) as exc:  # mapped where every command's errors are (errors.py)
        code, message = user_error(exc, "models")  # type: ignore[misc]
        return fail(message, code)


def _list(args: argparse.Namespace) -> int:
    from dsv4.runtime.resolve import DEFAULT_MODEL, NAMED_MODELS

    rows = []
    for m in NAMED_MODELS.values():
        path = m.path()
        row: dict[str, Any] = {"name": m.name, "installed": path is not None, "path": str(path) if path else None,
                               "default": m.name == DEFAULT_MODEL, "description": m.description}
        if path is not None:
            row.update(_summary(path))
        else:
            row["install"] = m.install
        rows.append(row)
    if args.json:
        print(json.dumps({"models": rows}, indent=2))
        return EXIT_OK
    for row in rows:
        mark = "*" if row["default"] else " "
        if row["installed"]:
            print(f"{mark} {row['name']:<16} {row['parameters'] / 1e6:.0f}M params  context {row['context_window']}  "
                  f"KV {row['kv_bytes_per_token_bf16']} B/token (bf16)  {row['path']}")
        else:
            print(f"{mark} {row['name']:<16} not installed: {row['install']}")
    print("\nAny GGUF file or HF checkpoint folder also works: dsv4-code models info PATH")
    return EXIT_OK


def _summary(path: Path) -> dict[str, Any]:
    from dsv4.runtime.loaders import open_checkpoint

    ckpt = open_checkpoint(path)
    cfg = ckpt.config
    return {
        "architecture": cfg.architecture,
        "parameters": cfg.param_count(),
        "context_window": cfg.max_position,
        "kv_bytes_per_token_bf16": cfg.kv_bytes_per_token(2),
    }


def _info(args: argparse.Namespace) -> int:
    from dsv4.runtime.loaders import open_checkpoint
    from dsv4.runtime.resolve import resolve_model

    from dsv4.runtime.engine.open import checkpoint_kind

    resolved = resolve_model(args.model_spec)
    if checkpoint_kind(resolved.path) == "deepseek_v4":
        return _info_v4(args, resolved)
    ckpt = open_checkpoint(resolved.path)
    cfg, tok = ckpt.config, ckpt.tokenizer
    info = {
        "name": resolved.name,
        "path": str(resolved.path),
        **ckpt.describe(),
        "architecture": cfg.architecture,
        "parameters": cfg.param_count(),
        "layers": cfg.num_layers,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "heads": cfg.num_heads,
        "kv_heads": cfg.num_kv_heads,
        "head_dim": cfg.head_dim,
        "vocab_size": cfg.vocab_size,
        "context_window": cfg.max_position,
        "kv_bytes_per_token_bf16": cfg.kv_bytes_per_token(2),
        "kv_bytes_per_token_fp32": cfg.kv_bytes_per_token(4),
        "rope_theta": cfg.rope_theta,
        "rope_scaling": cfg.rope_scaling.kind,
        "tied_embeddings": cfg.tie_embeddings,
        "chat_template": tok.chat_template is not None,
        "stop_tokens": sorted(tok.decode([i]) for i in tok.stop_token_ids),
    }
    return _print_info(info, args.json)


def _print_info(info: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(info, indent=2))
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return EXIT_OK


def _info_v4(args: argparse.Namespace, resolved: Any) -> int:
    from dsv4.runtime.deepseek_v4.checkpoint import detect_layout, safetensor_files
    from dsv4.runtime.deepseek_v4.config import v4_from_hf
    from dsv4.runtime.deepseek_v4.tokenizer import load_v4_tokenizer

    folder = resolved.path
    cfg_path = folder / "config.json" if (folder / "config.json").is_file() else folder / "inference" / "config.json"
    cfg = v4_from_hf(json.loads(cfg_path.read_text()))
    files = safetensor_files(folder)
    from safetensors import safe_open

    with safe_open(str(files[0]), framework="pt") as fh:
        layout = detect_layout(fh.keys())
    tok = load_v4_tokenizer(folder)
    kinds = [cfg.layer_kind(i) for i in range(cfg.num_layers)]
    info = {
        "name": resolved.name, "path": str(folder), "format": "safetensors", "shards": len(files), "layout": layout,
        "architecture": cfg.architecture, "parameters": cfg.param_count(), "layers": cfg.num_layers,
        "layer_kinds": {k: kinds.count(k) for k in ("sliding", "csa", "hca")}, "hidden_size": cfg.hidden_size,
        "heads": cfg.num_heads, "head_dim": cfg.head_dim, "routed_experts": cfg.n_routed_experts,
        "experts_per_token": cfg.experts_per_token, "hash_layers": cfg.num_hash_layers, "window": cfg.window,
        "index_topk": cfg.index_topk, "vocab_size": cfg.vocab_size, "context_window": cfg.max_position,
        "kv_bytes_per_token_bf16": cfg.kv_bytes_per_token(2),
        "window_bytes_per_sequence_bf16": cfg.num_layers * cfg.window * cfg.head_dim * 2,
        "expert_dtype": cfg.expert_dtype, "weights_fp8": cfg.weight_fp8, "numerics": cfg.numerics,
        "mtp_layers": cfg.num_mtp_layers, "tokenizer": tok.source,
    }
    return _print_info(info, args.json)


def _generate(args: argparse.Namespace) -> int:
    import torch

    from dsv4.runtime.engine.open import open_engine
    from dsv4.runtime.engine.sampling import SamplingParams
    from dsv4.runtime.resolve import resolve_model

    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    resolved = resolve_model(args.model_spec)
    engine = open_engine(resolved.path, precision=args.precision, context_window=args.context_window, numerics=args.numerics,
                         device=args.device, threads=args.threads)
    chat = engine.chat_format(thinking=args.thinking)
    if args.raw:
        ids = engine.tokenizer.encode(prompt, add_bos=engine.tokenizer.add_bos)
    else:
        messages = ([{"role": "system", "content": args.system}] if args.system else []) + [{"role": "user", "content": prompt}]
        ids = chat.prompt_ids(messages)
    params = SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, seed=args.seed)
    start, first, parts, n, finish = time.perf_counter(), None, [], 0, "length"
    for out in engine.generate(ids, params):
        if first is None:
            first = time.perf_counter() - start
        n += out.token_id is not None
        parts.append(out.text)
        if not args.json:
            sys.stdout.write(out.text)
            sys.stdout.flush()
        finish = out.finish_reason or finish
    elapsed = time.perf_counter() - start
    if args.json:
        print(json.dumps({
            "model": resolved.name, "text": "".join(parts), "prompt_tokens": len(ids), "completion_tokens": n,
            "finish_reason": finish, "precision": engine.loaded.precision, "threads": torch.get_num_threads(), "load_seconds": round(engine.loaded.load_seconds, 3),
            "time_to_first_token_s": round(first or 0.0, 4), "seconds": round(elapsed, 3),
        }))
    else:
        sys.stdout.write("\n")
    return EXIT_OK


def _score(args: argparse.Namespace) -> int:
    import numpy as np

    from dsv4.runtime.engine.open import open_engine
    from dsv4.runtime.resolve import resolve_model

    data = json.loads(args.tokens_file.read_text())
    ids = data if isinstance(data, list) else data.get("tokens") or data.get("input_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, int) for i in ids):
        return fail(f"{args.tokens_file}: expected a non-empty JSON list of token ids (or {{\"tokens\": [...]}})", EXIT_USAGE)
    resolved = resolve_model(args.model_spec)
    engine = open_engine(resolved.path, precision=args.precision, context_window=len(ids) + 1, numerics=args.numerics,
                         device=args.device, threads=args.threads)
    bad = [i for i in ids if not 0 <= i < engine.config.vocab_size]
    if bad:
        return fail(f"token ids out of range for a vocabulary of {engine.config.vocab_size}: {bad[:5]}", EXIT_USAGE)
    logits = engine.score(ids)  # (T, V)
    np.save(args.logits_out, logits.numpy())
    logprobs = logits[:-1].log_softmax(-1)
    nll = -logprobs.gather(1, __import__("torch").tensor(ids[1:]).unsqueeze(1)).mean().item() if len(ids) > 1 else float("nan")
    summary = {"model": resolved.name, "tokens": len(ids), "vocab_size": logits.shape[1], "precision": args.precision,
               "logits_out": str(args.logits_out), "mean_nll": nll, "perplexity": float(np.exp(nll))}
    print(json.dumps(summary) if args.json else "\n".join(f"{k}: {v}" for k, v in summary.items()))
    return EXIT_OK
