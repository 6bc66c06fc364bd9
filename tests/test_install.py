"""scripts/setup picks the torch build (CPU unless a CUDA driver or --gpu), the lockfile pins what pyproject asks
for, and the package has one version string. The dry runs go through a copy of the script in a folder with no
.venv, so they show what a clean machine gets; the slow test installs for real."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
HAS_DRIVER = Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


@pytest.fixture
def clean_copy(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup", tmp_path / "scripts" / "setup")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _setup(folder: Path, *args: str, env: dict[str, str] | None = None, path_prefix: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "DSV4_FORCE_CUDA"}
    full_env.update(env or {})
    if path_prefix is not None:
        full_env["PATH"] = f"{path_prefix}:{full_env['PATH']}"
    return subprocess.run(["bash", str(folder / "scripts" / "setup"), *args], capture_output=True, text=True,
                          env=full_env, timeout=60)


def _torch_version() -> str:
    runtime = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["runtime"]
    return next(r for r in runtime if r.startswith("torch")).split("==")[1]


def _pip_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("+ ") and " pip install " in line]


def test_dry_run_on_a_clean_machine_installs_the_cpu_torch(clean_copy):
    if HAS_DRIVER:
        pytest.skip("this machine has an NVIDIA driver")
    result = _setup(clean_copy, "--dev", "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "+ python3 -m venv .venv" or lines[0].endswith(" -m venv .venv")
    pip = _pip_lines(result.stdout)
    version = _torch_version()
    assert f"--no-index --no-deps torch=={version}+cpu" in pip[0]  # a local wheel first: no network needed
    assert f"--extra-index-url {CPU_INDEX} torch=={version}+cpu" in pip[1]  # else the CPU index, for torch only
    assert pip[2].endswith("-e .[runtime,dev]") and CPU_INDEX not in pip[2]
    assert not any("gpu" in line for line in pip)
    # the local model and the embedder through the command pipx / uv tool users run (it holds the pins)
    assert "+ .venv/bin/python -m dsv4.agent.cli models install all" in lines


def test_a_cuda_driver_gets_the_cuda_torch_and_the_gpu_extra(clean_copy, tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    smi = fake_bin / "nvidia-smi"  # the marker scripts/setup looks for: `nvidia-smi -L` lists a GPU
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-0)'\n")
    smi.chmod(0o755)
    result = _setup(clean_copy, "--dry-run", path_prefix=fake_bin)
    assert result.returncode == 0, result.stderr
    pip = _pip_lines(result.stdout)
    # `===`: a local 2.13.0+cpu wheel in pip's find-links does not satisfy it (`==` would take it)
    assert pip[0].endswith(f" torch==={_torch_version()}") and not any(CPU_INDEX in line or "+cpu" in line for line in pip)
    assert pip[1].endswith("-e .[runtime,gpu]")


@pytest.mark.parametrize("args, env, gpu", [
    (["--dry-run"], {"DSV4_FORCE_CUDA": "1"}, True),
    (["--dry-run"], {"DSV4_FORCE_CUDA": "0"}, False),
    (["--dry-run", "--gpu"], {"DSV4_FORCE_CUDA": "0"}, True),  # asked for: a GPU build without a driver in sight
])
def test_detection_override_and_gpu_flag(clean_copy, args, env, gpu):
    result = _setup(clean_copy, *args, env=env)
    assert result.returncode == 0, result.stderr
    pip = " ".join(_pip_lines(result.stdout))
    assert ("[runtime,gpu]" in pip) is gpu and ("+cpu" in pip) is not gpu


def test_locked_pins_every_install_to_the_lockfile(clean_copy):
    result = _setup(clean_copy, "--dry-run", "--locked", env={"DSV4_FORCE_CUDA": "0"})
    assert result.returncode == 2 and "requirements.lock is missing" in result.stderr
    shutil.copy(ROOT / "requirements.lock", clean_copy / "requirements.lock")
    result = _setup(clean_copy, "--dry-run", "--locked", env={"DSV4_FORCE_CUDA": "0"})
    assert result.returncode == 0 and "-c requirements.lock -e .[runtime]" in result.stdout


def test_unknown_option_is_refused(clean_copy):
    result = _setup(clean_copy, "--cuda")
    assert result.returncode == 2 and "unknown option --cuda" in result.stderr and not (clean_copy / ".venv").exists()


def test_lockfile_pins_satisfy_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        match = re.match(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if match:
            pins[match[1].lower().replace("_", "-")] = match[2]
    extras = project["optional-dependencies"]
    wanted = [Requirement(r) for r in project["dependencies"] + extras["runtime"] + extras["dev"]]
    for req in wanted:
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not in requirements.lock (run `uv lock` and `uv export`, see README)"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} does not satisfy {req}"
    assert (ROOT / "uv.lock").is_file()


def test_one_version_string():
    import dsv4

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "dsv4.__version__"}
    assert importlib.metadata.version("dsv4-code") == dsv4.__version__


@pytest.mark.slow
def test_setup_installs_a_working_cpu_build_in_a_clean_copy(tmp_path):
    if HAS_DRIVER:
        pytest.skip("this machine has an NVIDIA driver")
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tmp_path / name)
    env = {k: v for k, v in os.environ.items() if k not in ("DSV4_FORCE_CUDA", "VIRTUAL_ENV")}
    result = subprocess.run(["bash", "scripts/setup"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    check = ("import torch, importlib.metadata, dsv4, llguidance; assert not torch.version.cuda, torch.__version__; "
             "print(torch.__version__, importlib.metadata.version('dsv4-code') == dsv4.__version__)")
    probe = subprocess.run([str(tmp_path / ".venv" / "bin" / "python"), "-c", check], capture_output=True, text=True)
    assert probe.returncode == 0 and probe.stdout.split() == [f"{_torch_version()}+cpu", "True"], probe.stderr
