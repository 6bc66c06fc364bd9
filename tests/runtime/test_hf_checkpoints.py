"""HF safetensors folders: tiny random llama/qwen2/mistral models with each RoPE variant against transformers,
and SmolLM2 re-saved as safetensors against our own GGUF path."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

ROPES = {
    "default": {"rope_type": "default", "rope_theta": 10000.0},
    "linear": {"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0},
    "llama3": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 256, "rope_theta": 500000.0},
    "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 256, "rope_theta": 10000.0},
}


@pytest.fixture(scope="module")
def tokenizer_dir(hf_reference, tmp_path_factory):
    _, tokenizer = hf_reference
    folder = tmp_path_factory.mktemp("tokenizer")
    tokenizer.save_pretrained(folder)
    return folder


def _tiny(model_type: str, rope: dict, folder, tokenizer_dir):
    import shutil

    config_cls = {"llama": transformers.LlamaConfig, "qwen2": transformers.Qwen2Config, "mistral": transformers.MistralConfig}[model_type]
    config = config_cls(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                        num_key_value_heads=2, max_position_embeddings=1024, rope_parameters=dict(rope), tie_word_embeddings=False)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    with torch.no_grad():  # random biases, so that the qwen2 bias path is really checked
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.5)
    model.save_pretrained(folder)
    for f in tokenizer_dir.iterdir():
        shutil.copy(f, folder / f.name)
    return model


@pytest.mark.parametrize("model_type, rope", [("llama", "default"), ("llama", "linear"), ("llama", "llama3"), ("llama", "yarn"),
                                              ("qwen2", "default"), ("mistral", "default")])
def test_tiny_models_match_transformers(model_type, rope, tmp_path, tokenizer_dir):
    from dsv4.runtime.engine.engine import LlamaEngine

    reference = _tiny(model_type, ROPES[rope], tmp_path, tokenizer_dir)
    engine = LlamaEngine.load(tmp_path, precision="fp32", context_window=1024)
    assert engine.config.rope_scaling.kind == ROPES[rope]["rope_type"]
    ids = torch.randint(0, 49152, (300,), generator=torch.Generator().manual_seed(1)).tolist()
    with torch.inference_mode():
        expected = reference(torch.tensor([ids])).logits[0]
    got = engine.score(ids)
    assert (got - expected).abs().max().item() < 1e-3


def test_smollm_as_safetensors_matches_the_gguf(hf_reference, exact_engine, tmp_path, tokenizer_dir):
    import shutil

    from dsv4.runtime.engine.engine import LlamaEngine

    import json

    from safetensors.torch import save_file

    model, _ = hf_reference
    config = {k: v for k, v in model.config.to_dict().items() if k != "quantization_config"}  # a GGUF-loaded model refuses save_pretrained
    (tmp_path / "config.json").write_text(json.dumps(config))
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied to the embedding
    save_file(state, str(tmp_path / "model.safetensors"))
    for f in tokenizer_dir.iterdir():
        shutil.copy(f, tmp_path / f.name)
    engine = LlamaEngine.load(tmp_path, precision="fp32", context_window=256)
    assert not engine.config.rope_interleaved and engine.config.tie_embeddings
    ids = exact_engine.tokenizer.encode("Safetensors and GGUF hold the same weights in different layouts.")
    assert (engine.score(ids) - exact_engine.score(ids)).abs().max().item() < 1e-3
