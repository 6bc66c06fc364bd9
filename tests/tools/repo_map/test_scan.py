from __future__ import annotations

from pathlib import Path

from dsv4.tools.repo_scan import language_of, scan_repo


def test_scan_respects_git_and_skips_what_cannot_help(messy_repo: Path) -> None:
    scan = scan_repo(messy_repo)
    paths = {f.path for f in scan.files}
    skipped = dict(scan.skipped)
    assert {"pkg/__init__.py", "pkg/core.py", "pkg/sub/deep/leaf.py", "pkg/sub/deep/__init__.py",
            "pkg/untracked_new.py", "docs/überblick.md", "données/модуль.py", ".gitignore"} <= paths
    # gitignored files are not even candidates
    assert not {"build/out.py", "debug.log", "secret.env"} & (paths | set(skipped))
    assert skipped["assets/logo.png"] == "binary"
    assert skipped["data/blob.dat2"] == "binary"  # by content: NUL bytes
    assert skipped["static/app.min.js"] == "generated"
    assert skipped["gen/api_pb2.py"] == "generated"
    assert skipped["core_link.py"] == "symlink"
    assert skipped["outside_link"] == "symlink"
    huge = scan.by_path()["big/huge.py"]
    assert huge.oversized and huge.size > 1024 * 1024
    assert scan.by_path()["données/модуль.py"].language == "python"


def test_scan_without_git_uses_gitignore(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("ignored/\n")
    (tmp_path / "ignored").mkdir()
    (tmp_path / "ignored" / "x.py").write_text("x = 1\n")
    (tmp_path / "keep.py").write_text("y = 2\n")
    paths = {f.path for f in scan_repo(tmp_path).files}
    assert "keep.py" in paths and "ignored/x.py" not in paths


def test_language_map() -> None:
    assert language_of("a/b.tsx") == "tsx"
    assert language_of("x.hpp") == "cpp"
    assert language_of("lib.rs") == "rust"
    assert language_of("Makefile") == "make"
    assert language_of("weird.unknownext") is None
