"""`dsv4-code models ...` through the real parser, plus the import-cost contract of the CLI modules."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    from dsv4.agent.cli.models import add_models_parser, run_models_command

    parser = argparse.ArgumentParser(prog="dsv4-code")
    add_models_parser(parser.add_subparsers(dest="command"))
    code = run_models_command(parser.parse_args(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_importing_the_backend_and_cli_does_not_import_torch():
    code = ("import sys, dsv4.agent.backends.inprocess, dsv4.agent.cli.models, dsv4.runtime, dsv4.runtime.resolve;"
            "bad = [m for m in ('torch', 'numpy', 'tokenizers', 'gguf') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_list_and_info_json(smollm_path, capsys):
    code, out, _ = _run(["models", "list", "--json"], capsys)
    assert code == 0
    (row,) = [m for m in json.loads(out)["models"] if m["name"] == "smollm2-135m"]
    assert row["installed"] and row["default"] and row["context_window"] == 8192
    code, out, _ = _run(["models", "info", "smollm2-135m", "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["architecture"] == "llama" and info["layers"] == 30
    assert info["kv_bytes_per_token_bf16"] == 2 * 30 * 3 * 64 * 2
    assert 130e6 < info["parameters"] < 140e6


def test_generate_is_deterministic_at_temperature_zero(smollm_path, capsys):
    argv = ["models", "generate", "smollm2-135m", "def add(a, b):", "--raw", "--max-tokens", "12", "--temperature", "0", "--json"]
    code, out, _ = _run(argv, capsys)
    first = json.loads(out)
    assert code == 0 and first["completion_tokens"] == 12 and first["text"]
    assert json.loads(_run(argv, capsys)[1])["text"] == first["text"]


def test_generate_chat_mode_streams_text(smollm_path, capsys):
    code, out, _ = _run(["models", "generate", "smollm2-135m", "What is the capital of France?", "--max-tokens", "16"], capsys)
    assert code == 0 and "Paris" in out


def test_score_writes_fp32_logits(smollm_path, exact_engine, tmp_path, capsys):
    ids = exact_engine.tokenizer.encode("The quick brown fox jumps over the lazy dog.")
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps(ids))
    out_path = tmp_path / "logits.npy"
    code, out, _ = _run(["models", "score", "smollm2-135m", "--tokens-file", str(tokens), "--logits-out", str(out_path), "--json"], capsys)
    assert code == 0
    logits = np.load(out_path)
    assert logits.shape == (len(ids), 49152) and logits.dtype == np.float32
    assert np.abs(logits - exact_engine.score(ids).numpy()).max() < 1e-4
    assert json.loads(out)["perplexity"] > 1


def test_bad_model_is_a_clear_error(tmp_path, capsys):
    code, _, err = _run(["models", "info", str(tmp_path / "missing.gguf")], capsys)
    assert code == 2 and "smollm2-135m" in err
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\0\0\0" + b"\xff" * 16)
    code, _, err = _run(["models", "info", str(bad)], capsys)
    assert code == 3 and "GGUF" in err


def test_score_rejects_bad_token_files(smollm_path, tmp_path, capsys):
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"tokens": "not a list"}))
    code, _, err = _run(["models", "score", "smollm2-135m", "--tokens-file", str(tokens), "--logits-out", str(tmp_path / "x.npy")], capsys)
    assert code == 2 and "list of token ids" in err
