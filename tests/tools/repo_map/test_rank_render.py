from __future__ import annotations

from pathlib import Path

import pytest

from dsv4.tools.repo_map import RepoMap, TagCache, approx_tokens
from dsv4.tools.repo_map.rank import rank
from dsv4.tools.repo_map.tags import extract_tags

from ...conftest import git
from .conftest import commit_all, write


def tags_of(files: dict[str, str]):  # type: ignore[no-untyped-def]
    return {path: extract_tags(text.encode(), "python") for path, text in files.items()}


def hub_and_spokes() -> dict[str, str]:
    files = {"hub.py": "def shared_helper():\n    return 1\n",
             "island.py": "def lonely_function():\n    return 2\n"}
    for i in range(6):
        files[f"user{i}.py"] = f"from hub import shared_helper\n\ndef use{i}():\n    return shared_helper() + shared_helper()\n"
    return files


def test_file_referenced_by_many_ranks_above_isolated_one() -> None:
    ranking = rank(hub_and_spokes().keys(), tags_of(hub_and_spokes()))
    assert ranking.file_rank["hub.py"] > ranking.file_rank["island.py"]
    assert ranking.files_by_rank()[0] == "hub.py"
    assert abs(sum(ranking.file_rank.values()) - 1.0) < 1e-6
    assert ranking.defs[0][1:3] == ("hub.py", ranking.defs[0][2]) and ranking.defs[0][2].name == "shared_helper"


def test_mentioned_identifier_lifts_its_file() -> None:
    files = hub_and_spokes()
    plain = rank(files.keys(), tags_of(files))
    lifted = rank(files.keys(), tags_of(files), mentioned_idents={"lonely_function"})
    assert lifted.file_rank["island.py"] > 3 * plain.file_rank["island.py"]
    assert lifted.defs[0][2].name == "lonely_function"


def test_mentioned_file_lifts_it() -> None:
    files = hub_and_spokes()
    lifted = rank(files.keys(), tags_of(files), mentioned_files={"island.py"})
    assert lifted.file_rank["island.py"] > lifted.file_rank["hub.py"]


def test_names_do_not_link_across_languages() -> None:
    tags = tags_of({"app.py": "def main():\n    items.append(1)\n"})
    tags["vendor.js"] = extract_tags(b"function append(x) { return x; }\n", "javascript")
    ranking = rank(tags.keys(), tags)
    assert ranking.file_rank["vendor.js"] == pytest.approx(ranking.file_rank["app.py"])


N_MODULES = 80


@pytest.fixture
def big_repo(tmp_path: Path) -> Path:
    """Enough definitions that any map budget below is a real cut."""
    root = tmp_path / "big"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    for m in range(N_MODULES):
        body = "".join(f"class Model{m}x{c}:\n    def method_{c}_a(self):\n        return helper_{(m + 1) % N_MODULES}()\n"
                       f"    def method_{c}_b(self, value):\n        return Model{(m + 3) % N_MODULES}x{c}()\n\n"
                       for c in range(5))
        write(root, f"pkg/mod{m}.py", body + f"def helper_{m}():\n    return {m}\n")
    commit_all(root)
    return root


@pytest.mark.parametrize("budget", [256, 1024, 4096, 8192])
def test_rendered_map_fills_budget_within_five_percent_never_over(big_repo: Path, budget: int) -> None:
    rmap = RepoMap(big_repo, TagCache(None))
    rmap.refresh()
    rendered = rmap.render(budget, approx_tokens)
    assert rendered.defs_shown < rendered.defs_total  # a real cut, not everything
    assert rendered.tokens == approx_tokens(rendered.text)
    assert rendered.tokens <= budget
    assert rendered.tokens >= 0.95 * budget


def test_rendered_map_shows_scope_lines_and_gaps(big_repo: Path) -> None:
    rmap = RepoMap(big_repo, TagCache(None))
    rmap.refresh()
    text = rmap.render(100_000, approx_tokens).text
    assert "pkg/mod7.py:\nclass Model7x0:\n    def method_0_a(self):\n⋮\n" in text or "pkg/mod7.py:\nclass Model7x0:\n    def method_0_a(self):\n    def method_0_b" in text


def test_render_with_a_word_counter(big_repo: Path) -> None:
    # Any callable works as the tokenizer; the budget holds for it too.
    rmap = RepoMap(big_repo, TagCache(None))
    rmap.refresh()
    words = lambda text: len(text.split())  # noqa: E731
    rendered = rmap.render(500, words)
    assert 475 <= words(rendered.text) <= 500
