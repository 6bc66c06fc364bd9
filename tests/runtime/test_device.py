"""`--device` for the in-process engines: cpu as before, auto = CUDA when there is one, cuda without one a clear
error before any weight is read; the CPU-only weight formats refused on CUDA."""

from __future__ import annotations

import argparse

import pytest
import torch

from dsv4.runtime.engine.device import precision_on, resolve_device
from dsv4.runtime.errors import RuntimeModelError

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")


def test_resolve_device() -> None:
    assert resolve_device(None) == torch.device("cpu") and resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(RuntimeModelError, match="not one of auto, cpu, cuda"):
        resolve_device("tpu")


@no_cuda
def test_cuda_without_cuda_is_a_clear_error() -> None:
    with pytest.raises(RuntimeModelError, match="sees no CUDA device.*--device cpu"):
        resolve_device("cuda")


def test_precision_on_cuda() -> None:
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert precision_on(cpu, "int4") == "int4" and precision_on(cpu, None) is None
    assert precision_on(cuda, None) == "bf16" and precision_on(cuda, "auto") == "bf16"
    assert precision_on(cuda, "fp32") == "fp32"
    with pytest.raises(RuntimeModelError, match="CPU kernels only"):
        precision_on(cuda, "int8")


@no_cuda
def test_open_engine_and_backend_devices(smollm_path, exact_engine) -> None:
    from dsv4.agent.backends.inprocess import InProcessBackend
    from dsv4.runtime.engine.open import open_engine

    with pytest.raises(RuntimeModelError, match="no CUDA device"):
        open_engine(smollm_path, device="cuda")
    with pytest.raises(RuntimeModelError, match="no CUDA device"):
        InProcessBackend.load(str(smollm_path), device="cuda")
    ids = [1, 2, 3, 4]
    auto = open_engine(smollm_path, precision="fp32", context_window=64, device="auto")  # the CPU here
    assert auto.device.type == "cpu" and torch.equal(auto.score(ids), exact_engine.score(ids))


@no_cuda
def test_models_cli_device_cuda_is_a_clear_error(smollm_path, capsys) -> None:
    from dsv4.agent.cli.models import add_models_parser, run_models_command

    parser = argparse.ArgumentParser(prog="dsv4-code")
    add_models_parser(parser.add_subparsers(dest="command"))
    code = run_models_command(parser.parse_args(["models", "generate", str(smollm_path), "hi", "--device", "cuda"]))
    err = capsys.readouterr().err
    assert code != 0 and "no CUDA device" in err and "Traceback" not in err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_llama_on_cuda_matches_the_cpu_run(smollm_path, precision) -> None:
    from dsv4.runtime.engine.open import open_engine

    ids = list(range(100, 400))
    cuda = open_engine(smollm_path, precision=precision, context_window=512, device="cuda")
    cpu = open_engine(smollm_path, precision=precision, context_window=512)
    tol = dict(rtol=1e-3, atol=2e-3) if precision == "fp32" else dict(rtol=0.1, atol=0.3)
    torch.testing.assert_close(cuda.score(ids), cpu.score(ids), **tol)
    a, b = cuda.prefill(ids[:50]), cpu.prefill(ids[:50])
    for t in (5, 6, 7):
        a, b = cuda.decode(t), cpu.decode(t)
    torch.testing.assert_close(a, b, **tol)
    assert a.device.type == "cpu"  # host logits for sampling
