"""`dsv4-code completion bash|zsh|fish`: the scripts load in the real shells and complete what the parser defines."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from dsv4.agent.cli.main import build_parser
from dsv4.agent.cli.completion import command_tree

from ...conftest import run_cli

COMPLETE = """
source "$1"; shift
COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=()
_dsv4_code
printf '%s\\n' "${COMPREPLY[@]}"
"""


@pytest.fixture(scope="module")
def scripts(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("completion")
    found = {}
    for shell in ("bash", "zsh", "fish"):
        proc = run_cli(["completion", shell], folder)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        found[shell] = folder / f"dsv4-code.{shell}"
        found[shell].write_text(proc.stdout)
    return found


def bash_complete(script: Path, *words: str, cwd: Path | None = None) -> list[str]:
    proc = subprocess.run(["bash", "-c", COMPLETE, "complete", str(script), "dsv4-code", *words], capture_output=True,
                          text=True, timeout=30, cwd=cwd)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return proc.stdout.split()


def test_bash_completes_every_subcommand_the_parser_has(scripts):
    subcommands = list(command_tree(build_parser()).subcommands)
    assert {"run", "trust", "memory", "models", "init", "completion"} <= set(subcommands)
    assert bash_complete(scripts["bash"], "") == subcommands
    assert bash_complete(scripts["bash"], "mo") == ["models"] and bash_complete(scripts["bash"], "me") == ["memory"]


def test_bash_completes_nested_commands_flags_and_choices(scripts):
    bash = scripts["bash"]
    assert bash_complete(bash, "models", "") == ["list", "info", "generate", "score", "install"]
    assert bash_complete(bash, "models", "install", "") == ["smollm2-135m", "all-minilm-l6-v2", "all"]
    assert bash_complete(bash, "run", "--output-format", "") == ["text", "json", "stream-json"]
    assert bash_complete(bash, "run", "--out") == ["--output-format"]
    assert bash_complete(bash, "--backend", "scripted", "--model", "m", "ru") == ["run"]  # values are skipped
    assert bash_complete(bash, "--permission-mode", "f") == ["full-auto"]
    assert bash_complete(bash, "memory", "remember", "--scope", "") == ["user", "repo", "session"]


def test_bash_falls_back_to_file_names_for_values_and_arguments(scripts, tmp_path):
    (tmp_path / "script.json").write_text("[]")
    (tmp_path / "notes.txt").write_text("")
    assert bash_complete(scripts["bash"], "--script", "scr", cwd=tmp_path) == ["script.json"]
    assert bash_complete(scripts["bash"], "run", "no", cwd=tmp_path) == ["notes.txt"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_the_zsh_script_loads(scripts):
    proc = subprocess.run(["zsh", "-c", f"source {scripts['zsh']} && complete -p dsv4-code"], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0 and "_dsv4_code" in proc.stdout, proc.stderr


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completes_subcommands_and_choices(scripts):
    def fish(line: str) -> list[str]:
        proc = subprocess.run(["fish", "--no-config", "-c", f"source {scripts['fish']}; complete -C {line!r}"],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        return [row.split("\t")[0] for row in proc.stdout.splitlines()]

    assert "models" in fish("dsv4-code mo") and "memory" not in fish("dsv4-code mo")
    assert {"all", "all-minilm-l6-v2", "smollm2-135m"} <= set(fish("dsv4-code models install "))
    assert set(fish("dsv4-code run --output-format ")) == {"text", "json", "stream-json"}
