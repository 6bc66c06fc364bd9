"""Bad models and requests fail with a clear error before any weights are read or tokens computed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dsv4.runtime.errors import BadModelFile, MissingTokenizer, ModelNotFound


def _write_gguf(path: Path, arch: str, *, tokenizer: bool) -> Path:
    gguf = pytest.importorskip("gguf")
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(8)
    w.add_feed_forward_length(16)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    if tokenizer:
        w.add_tokenizer_model("gpt2")
        w.add_token_list(["a", "b", "c", "ab"])
        w.add_token_merges(["a b"])
    rng = np.random.default_rng(0)
    for name, shape in [("token_embd.weight", (4, 8)), ("output_norm.weight", (8,)), ("blk.0.attn_q.weight", (8, 8))]:
        w.add_tensor(name, rng.standard_normal(shape).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_truncated_gguf(smollm_path, tmp_path):
    from dsv4.runtime.engine.engine import LlamaEngine

    cut = tmp_path / "cut.gguf"
    with smollm_path.open("rb") as src, cut.open("wb") as dst:
        dst.write(src.read(smollm_path.stat().st_size // 2))
    with pytest.raises(BadModelFile, match="truncated GGUF: tensor .* needs bytes up to .* but the file has"):
        LlamaEngine.load(cut)


def test_gguf_cut_inside_the_header(smollm_path, tmp_path):
    from dsv4.runtime.loaders import open_checkpoint

    cut = tmp_path / "header.gguf"
    cut.write_bytes(smollm_path.read_bytes()[:4096])
    with pytest.raises(BadModelFile, match="cut off or corrupt"):
        open_checkpoint(cut)


def test_wrong_architecture(tmp_path):
    from dsv4.runtime.engine.engine import LlamaEngine

    path = _write_gguf(tmp_path / "bert.gguf", "bert", tokenizer=True)
    with pytest.raises(BadModelFile, match="GGUF architecture 'bert' is not supported; supported: .*llama"):
        LlamaEngine.load(path)


def test_gguf_without_tokenizer(tmp_path):
    from dsv4.runtime.engine.engine import LlamaEngine

    path = _write_gguf(tmp_path / "notok.gguf", "llama", tokenizer=False)
    with pytest.raises(MissingTokenizer, match="has no tokenizer"):
        LlamaEngine.load(path)


def test_hf_folder_without_tokenizer(tmp_path):
    from dsv4.runtime.loaders import open_checkpoint

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "llama", "vocab_size": 4, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
        "num_attention_heads": 2}))
    from safetensors.numpy import save_file

    save_file({"model.embed_tokens.weight": np.zeros((4, 8), np.float32)}, str(folder / "model.safetensors"))
    with pytest.raises(MissingTokenizer, match="no tokenizer.json"):
        open_checkpoint(folder)


def test_hf_folder_of_unknown_model_type(tmp_path):
    from dsv4.runtime.loaders import open_checkpoint

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(BadModelFile, match="model_type 'bert' is not supported"):
        open_checkpoint(folder)


def test_not_a_gguf_file(tmp_path):
    from dsv4.runtime.loaders import open_checkpoint

    path = tmp_path / "weights.bin"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(BadModelFile, match="not a GGUF file"):
        open_checkpoint(path)


def test_unknown_model_lists_the_options(tmp_path):
    from dsv4.runtime.resolve import resolve_model

    with pytest.raises(ModelNotFound) as info:
        resolve_model(str(tmp_path / "nope.gguf"))
    message = str(info.value)
    assert "neither a named model nor an existing path" in message
    assert "smollm2-135m" in message and "GGUF file" in message and "--base-url" in message


def test_backend_load_reports_model_not_found():
    from dsv4.agent.backends.inprocess import InProcessBackend, ModelNotFound as Reexported

    assert Reexported is ModelNotFound
    with pytest.raises(ModelNotFound, match="named model"):
        InProcessBackend.load("no-such-model-anywhere")


def test_named_model_resolves_to_the_wheel(smollm_path):
    from dsv4.runtime.resolve import resolve_model

    resolved = resolve_model("smollm2-135m")
    assert resolved.path == smollm_path and resolved.name == "smollm2-135m"
    assert resolve_model(None).path == smollm_path  # the default
    assert resolve_model(str(smollm_path.parent)).path == smollm_path.parent  # a folder holding one .gguf


def test_folder_with_one_gguf_opens_the_file(smollm_path, tmp_path):
    from dsv4.runtime.loaders import open_checkpoint

    folder = tmp_path / "m"
    folder.mkdir()
    shutil.copy(smollm_path, folder / "model.gguf")
    assert open_checkpoint(folder).path == folder / "model.gguf"
