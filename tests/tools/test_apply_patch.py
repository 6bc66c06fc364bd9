"""apply_patch on real files: both patch forms, relaxation, refusals, and all-or-nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dsv4.tools.patch_format import PatchSyntaxError, parse_patch
from dsv4.tools.toolbox import Toolbox
from dsv4.tools.workspace import Workspace

APP = "import sys\n\n\ndef main():\n    print('hi')\n    return 0\n\n\ndef helper():\n    return 0\n"


def patch(root: Path, text: str):
    toolbox = Toolbox(Workspace(root))
    tool, args = toolbox.prepare("apply_patch", json.dumps({"patch": text}))
    return toolbox.execute(tool, args)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "old.txt").write_text("bye\n")
    return tmp_path


def test_envelope_adds_updates_deletes_and_moves(repo):
    result = patch(repo, """*** Begin Patch
*** Add File: pkg/new.py
+VALUE = 1
*** Update File: app.py
*** Move to: src/app.py
@@ def main():
-    print('hi')
+    print('hello')
*** Delete File: old.txt
*** End Patch
""")
    assert not result.is_error, result.text
    assert (repo / "pkg/new.py").read_text() == "VALUE = 1\n"
    assert not (repo / "app.py").exists() and not (repo / "old.txt").exists()
    assert (repo / "src/app.py").read_text() == APP.replace("print('hi')", "print('hello')")
    assert sorted(result.files_changed) == ["app.py", "old.txt", "pkg/new.py", "src/app.py"]


def test_move_keeps_the_mode(repo):
    (repo / "run.sh").write_text("echo hi\n")
    (repo / "run.sh").chmod(0o755)
    text = "*** Begin Patch\n*** Update File: run.sh\n*** Move to: bin/run.sh\n-echo hi\n+echo hello\n*** End Patch"
    assert not patch(repo, text).is_error
    assert (repo / "bin/run.sh").stat().st_mode & 0o777 == 0o755


def test_scope_line_disambiguates_repeated_context(repo):
    text = "*** Begin Patch\n*** Update File: app.py\n@@ def helper():\n-    return 0\n+    return 1\n*** End Patch"
    assert not patch(repo, text).is_error
    assert (repo / "app.py").read_text().endswith("def helper():\n    return 1\n")
    assert "    print('hi')\n    return 0\n" in (repo / "app.py").read_text()


def test_ambiguous_hunk_is_refused_with_lines_and_nothing_changes(repo):
    text = "*** Begin Patch\n*** Update File: app.py\n-    return 0\n+    return 2\n*** Add File: x.py\n+x\n*** End Patch"
    result = patch(repo, text)
    assert result.is_error and "lines 6, 10" in result.text and "scope line" in result.text
    assert (repo / "app.py").read_text() == APP and not (repo / "x.py").exists()


def test_all_or_nothing_across_files(repo):
    text = ("*** Begin Patch\n*** Update File: app.py\n@@ def main():\n-    print('hi')\n+    print('yo')\n"
            "*** Update File: old.txt\n-not there\n+x\n*** End Patch")
    result = patch(repo, text)
    assert result.is_error and "no file was changed" in result.text and "old.txt hunk 1" in result.text
    assert (repo / "app.py").read_text() == APP


def test_resent_patch_is_already_applied(repo):
    text = "*** Begin Patch\n*** Update File: app.py\n def main():\n-    print('hi')\n+    print('bye')\n*** End Patch"
    assert not patch(repo, text).is_error
    again = patch(repo, text)
    assert not again.is_error and "already applied" in again.text and again.files_changed == []


def test_unified_diff_with_git_headers_and_wrong_counts(repo):
    text = """diff --git a/app.py b/app.py
index 000..111 100644
--- a/app.py
+++ b/app.py
@@ -4,3 +4,3 @@ import sys
 def main():
-    print('hi')
+    print('unified')
     return 0
@@ -9,7 +9,7 @@
 def helper():
-    return 0
+    return 42
"""
    result = patch(repo, text)
    assert not result.is_error, result.text
    assert (repo / "app.py").read_text() == APP.replace("print('hi')", "print('unified')").replace(
        "def helper():\n    return 0", "def helper():\n    return 42")


def test_unified_diff_line_hint_breaks_ties(repo):
    text = "--- a/app.py\n+++ b/app.py\n@@ -10,1 +10,1 @@\n-    return 0\n+    return 5\n"
    assert not patch(repo, text).is_error
    assert (repo / "app.py").read_text().endswith("def helper():\n    return 5\n")


def test_unified_new_and_deleted_files_and_missing_newline(repo):
    text = ("--- /dev/null\n+++ b/n.txt\n@@ -0,0 +1,2 @@\n+one\n+two\n\\ No newline at end of file\n"
            "--- a/old.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n")
    assert not patch(repo, text).is_error
    assert (repo / "n.txt").read_text() == "one\ntwo" and not (repo / "old.txt").exists()


def test_indent_shifted_and_crlf_hunks_are_relaxed(repo):
    (repo / "win.py").write_bytes(b"class A:\r\n    def f(self):\r\n        return 1\r\n")
    text = "*** Begin Patch\n*** Update File: win.py\n def f(self):\n-    return 1\n+    return 2\n*** End Patch"
    result = patch(repo, text)
    assert not result.is_error and "indentation" in result.text
    assert (repo / "win.py").read_bytes() == b"class A:\r\n    def f(self):\r\n        return 2\r\n"


def test_end_of_file_insertion_and_unanchored_insertion(repo):
    text = "*** Begin Patch\n*** Update File: app.py\n+\n+\n+def extra():\n+    pass\n*** End of File\n*** End Patch"
    assert not patch(repo, text).is_error
    assert (repo / "app.py").read_text().endswith("return 0\n\n\ndef extra():\n    pass\n")
    bad = patch(repo, "*** Begin Patch\n*** Update File: app.py\n+x = 1\n*** End Patch")
    assert bad.is_error and "nothing to anchor" in bad.text


def test_add_over_existing_and_update_of_missing_are_refused(repo):
    assert "already exists" in patch(repo, "*** Begin Patch\n*** Add File: app.py\n+x\n*** End Patch").text
    assert "no such file" in patch(repo, "*** Begin Patch\n*** Update File: zz.py\n-a\n+b\n*** End Patch").text


def test_patch_cannot_escape_the_root(repo):
    result = patch(repo, "*** Begin Patch\n*** Add File: ../evil.py\n+x\n*** End Patch")
    assert result.is_error and not (repo.parent / "evil.py").exists()


def test_failed_write_rolls_back_files_already_written(repo):
    # old.txt is a file, so creating old.txt/inner.txt fails at write time, after app.py was written.
    text = ("*** Begin Patch\n*** Update File: app.py\n@@ def main():\n-    print('hi')\n+    print('x')\n"
            "*** Add File: old.txt/inner.txt\n+b\n*** End Patch")
    result = patch(repo, text)
    assert result.is_error and "restored" in result.text
    assert (repo / "app.py").read_text() == APP and (repo / "old.txt").read_text() == "bye\n"
    assert sorted(p.name for p in repo.iterdir()) == ["app.py", "old.txt"]


@pytest.mark.parametrize("text", ["just prose", "*** Begin Patch\n*** Update File: a.py\n@@\n*** End Patch",
                                  "*** Begin Patch\n*** Add File: a.py\nno plus\n*** End Patch"])
def test_malformed_patches_are_explained(text):
    with pytest.raises(PatchSyntaxError):
        parse_patch(text)


def test_patch_that_breaks_syntax_is_flagged(repo):
    text = "*** Begin Patch\n*** Update File: app.py\n@@ def helper():\n-    return 0\n+    return (0\n*** End Patch"
    result = patch(repo, text)
    assert not result.is_error and "syntax error" in result.text and "app.py:" in result.text


def test_stale_middle_line_is_located_by_block_anchor(repo):
    text = ("*** Begin Patch\n*** Update File: app.py\n def main():\n-    print('hello')\n-    return 0\n"
            "+    print('hi')\n+    return 1\n*** End Patch")
    result = patch(repo, text)
    assert not result.is_error and "block anchor" in result.text
    assert "def main():\n    print('hi')\n    return 1\n" in (repo / "app.py").read_text()
