"""The V4 model with its hot paths through the kernels (run by the Triton interpreter on CPU tensors) against the
model's own torch code: the wiring (candidate lists, states, dispatch) gives the same logits. And the dispatcher
picks the references for CPU tensors."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dsv4.kernels import dispatch
from dsv4.kernels.sparse_attention import sparse_attention_ref
from tests.runtime.v4.tiny import random_model, tiny_config

from .conftest import interpreter, needs_triton


def test_dispatcher_runs_the_reference_on_cpu(gen) -> None:
    q, kv = torch.randn(2, 3, 16, generator=gen), torch.randn(9, 16, generator=gen)
    idx = torch.randint(-1, 9, (2, 5), generator=gen, dtype=torch.int32)
    sink = torch.randn(3, generator=gen)
    assert not dispatch.use_triton(q)
    assert torch.equal(dispatch.sparse_attention(q, kv, idx, sink, 0.25), sparse_attention_ref(q, kv, idx, sink, 0.25))


def test_kernels_on_cpu_need_the_interpreter(monkeypatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET")
    with pytest.raises(ValueError, match="interpreter"):
        with dispatch.kernels_enabled(True, on_cpu=True):
            pass


@needs_triton
@interpreter
@pytest.mark.parametrize("chunks", [(21,), (9, 1, 1, 1, 1, 1, 1, 1)])
def test_model_through_the_kernels_gives_the_same_logits(chunks) -> None:
    cfg = tiny_config(layers=(0, 4, 8), window=8, topk=3)  # window-only, CSA (4:1) and HCA-style (8:1) layers
    model = random_model(cfg, seed=3)
    ids = torch.randint(0, cfg.vocab_size, (sum(chunks),), generator=torch.Generator().manual_seed(5))
    want = model(ids, chunk=chunks[0])
    with dispatch.kernels_enabled(True, on_cpu=True):
        cache, outs, pos = model.new_cache(), [], 0
        for n in chunks:  # prefill, then one-token decode steps (the decode kernels)
            outs.append(model(ids[pos:pos + n], cache))
            pos += n
    got = torch.cat(outs)
    torch.testing.assert_close(got, want if len(chunks) == 1 else model(ids, chunk=None), rtol=1e-4, atol=1e-4)
    assert torch.equal(got.argmax(-1), want.argmax(-1))
    assert not torch.equal(got, want)  # the kernels ran: their sums round differently


def test_the_cpu_model_never_imports_triton() -> None:
    code = ("import sys, torch; from dsv4.runtime.deepseek_v4.model import DeepseekV4ForCausalLM; "
            "from tests.runtime.v4.tiny import random_model, tiny_config; "
            "random_model(tiny_config(vocab=64))(torch.tensor([1, 2, 3])); print('triton' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"


def test_kernels_do_not_import_the_runtime() -> None:
    """The dependency direction is runtime -> kernels (the design card): the references stand alone, and the
    tests here check them against the runtime's code."""
    root = Path(__file__).resolve().parents[2] / "kernels"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any("runtime" in n for n in names), f"{path.name} imports {names}"
