from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def run_context(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dsv4.agent.cli", "context", *args], cwd=cwd, text=True,
                          capture_output=True, env=dict(os.environ), timeout=120)


def test_json_is_one_document(messy_repo: Path, dsv4_home: Path) -> None:
    proc = run_context(["--json", "--budget", "5000"], messy_repo)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["tokens"] <= 5000 and doc["budget_tokens"] == 5000
    whole = {f["path"] for f in doc["included_whole"]}
    assert "pkg/core.py" in whole
    assert {s["path"]: s["reason"] for s in doc["skipped"]}["assets/logo.png"] == "binary"
    assert doc["build_s"] > 0 and doc["token_counter"].startswith("approximate")
    assert (dsv4_home / "repomap" / "tags.sqlite").is_file()


def test_text_and_explain(messy_repo: Path) -> None:
    plain = run_context([], messy_repo)
    assert plain.returncode == 0, plain.stderr
    assert "files whole" in plain.stdout and "Loaded whole" in plain.stdout and "built in" in plain.stdout
    explained = run_context(["--explain", "--budget", "300"], messy_repo)
    assert explained.returncode == 0
    assert "Why:" in explained.stdout and "Skipped:" in explained.stdout and "Timings:" in explained.stdout


def test_bad_budget_is_a_usage_error(messy_repo: Path) -> None:
    proc = run_context(["--budget", "-5"], messy_repo)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "budget" in proc.stderr


def test_outside_a_repository(tmp_path: Path) -> None:
    proc = run_context(["--json"], tmp_path)
    assert proc.returncode == 2 and proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1


def test_importing_the_cli_module_stays_light() -> None:
    code = ("import sys, dsv4.agent.cli.context, dsv4.tools.repo_map; "
            "heavy = [m for m in ('tree_sitter', 'watchdog', 'numpy') if m in sys.modules]; print(heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_backend_tokenizer_drives_the_budget(messy_repo: Path, tmp_path: Path) -> None:
    from dsv4.agent.backends.scripted import ScriptedBackend
    from dsv4.agent.context import backend_token_counter
    from dsv4.tools.repo_map import build_repo_context

    count = backend_token_counter(ScriptedBackend([]))
    assert count("") == 0 and count("x" * 400) > count("x" * 40)
    ctx = build_repo_context(messy_repo, 400, count_tokens=count, cache_dir=tmp_path / "cache")
    assert count(ctx.text) <= 400 and ctx.tokens == count(ctx.text)
