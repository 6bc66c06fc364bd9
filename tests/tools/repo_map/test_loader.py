from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from dsv4.tools.repo_map import build_repo_context

from ...conftest import GIT_ENV, git
from .conftest import commit_all, write

FILE_HEADER = re.compile(r'^<file path="([^"]+)">$', re.M)


def test_small_repo_is_loaded_whole_in_recency_order(messy_repo: Path, tmp_path: Path) -> None:
    # Make the history say core.py changed last among committed files; the untracked file is newer still.
    write(messy_repo, "pkg/core.py", (messy_repo / "pkg/core.py").read_text() + "\n# touched\n")
    git(messy_repo, "add", "pkg/core.py")
    subprocess.run(["git", "commit", "-qm", "touch core"], cwd=messy_repo, check=True,
                   env={**os.environ, **GIT_ENV, "GIT_COMMITTER_DATE": "2030-01-01T00:00:00"})
    later = time.time() + 2e9  # past the faked commit date
    os.utime(messy_repo / "pkg/untracked_new.py", (later, later))
    ctx = build_repo_context(messy_repo, 200_000, cache_dir=tmp_path / "cache")
    assert ctx.fits_whole and not ctx.map_only
    assert ctx.tokens <= 200_000
    order = FILE_HEADER.findall(ctx.text)
    assert order == ctx.included_whole
    assert order[-1] == "pkg/untracked_new.py"  # untracked: its mtime is later than any commit
    assert order[-2] == "pkg/core.py"  # the last commit touched it
    assert "données/модуль.py" in order and "docs/überblick.md" in order
    assert "big/huge.py" not in order and ctx.oversized == ["big/huge.py"]
    assert not {"assets/logo.png", "core_link.py", "build/out.py"} & set(order)
    # The map comes first and outlines all files.
    assert ctx.text.index("## Map") < ctx.text.index("<file path=")
    assert "class Engine:" in ctx.text.split("## Files")[0]


def test_warm_build_reads_the_tag_cache(messy_repo: Path, tmp_path: Path) -> None:
    cold = build_repo_context(messy_repo, 50_000, cache_dir=tmp_path / "cache")
    warm = build_repo_context(messy_repo, 50_000, cache_dir=tmp_path / "cache")
    assert cold.parsed > 0 and warm.parsed == 0 and warm.from_cache == cold.parsed
    assert warm.text == cold.text  # deterministic: same tree, same block
    assert (tmp_path / "cache" / "tags.sqlite").is_file()


@pytest.fixture
def wide_repo(tmp_path: Path) -> Path:
    root = tmp_path / "wide"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write(root, "core/base.py", "class Base:\n    def save(self):\n        return 1\n")
    for i in range(60):
        write(root, f"app/feature{i}.py", f"from core.base import Base\n\n\nclass Feature{i}(Base):\n"
              + "".join(f"    def step_{j}(self):\n        return Base().save() + {j}\n" for j in range(30)))
    write(root, "app/rarely.py", "def rarely_used_thing():\n    return 42\n")
    commit_all(root)
    return root


@pytest.mark.parametrize("budget", [3000, 12_000, 20_000])
def test_budget_is_never_exceeded_when_the_repo_does_not_fit(wide_repo: Path, tmp_path: Path, budget: int) -> None:
    ctx = build_repo_context(wide_repo, budget, cache_dir=tmp_path / "cache")
    assert not ctx.fits_whole
    assert ctx.tokens <= budget
    assert ctx.tokens >= 0.9 * budget  # what is left after the files goes to the map
    assert ctx.included_whole[0:1] == ["core/base.py"] or "core/base.py" in ctx.included_whole
    assert set(ctx.included_whole).isdisjoint(ctx.map_only)
    assert len(ctx.included_whole) + len(ctx.map_only) == 62
    map_text = ctx.text.split("## Files")[0]
    assert not any(f"{p}:\n" in map_text for p in ctx.included_whole)  # the map describes the rest only


def test_mentioned_file_and_identifier_are_loaded_first(wide_repo: Path, tmp_path: Path) -> None:
    ctx = build_repo_context(wide_repo, 3000, cache_dir=tmp_path / "cache", mentioned={"app/rarely.py"})
    assert "app/rarely.py" in ctx.included_whole
    ctx = build_repo_context(wide_repo, 3000, cache_dir=tmp_path / "cache", mentioned={"step_29"})
    assert "def step_29(self):" in ctx.text


def test_edit_keeps_the_prefix_before_the_changed_file(wide_repo: Path, tmp_path: Path) -> None:
    before = build_repo_context(wide_repo, 1_000_000, cache_dir=tmp_path / "cache")
    assert before.fits_whole
    target = wide_repo / "app/feature30.py"
    target.write_text(target.read_text().replace("return Base().save() + 7", "return Base().save() + 700"))
    after = build_repo_context(wide_repo, 1_000_000, cache_dir=tmp_path / "cache")
    cut = before.diverges_at(after)
    assert after.included_whole[-1] == "app/feature30.py"  # dirty: most recently changed
    assert before.text.index('<file path="app/feature30.py">') <= cut  # everything before it is reusable
    assert cut > len(before.text) // 3


def test_tiny_budget_still_obeys(wide_repo: Path, tmp_path: Path) -> None:
    ctx = build_repo_context(wide_repo, 50, cache_dir=tmp_path / "cache")
    assert ctx.tokens <= 50 and not ctx.included_whole
