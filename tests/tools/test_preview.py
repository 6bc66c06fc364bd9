"""Edit previews: the diff a call would make, computed on a recording workspace; the disk is never touched."""

from __future__ import annotations

from pathlib import Path

from dsv4.tools.apply_patch import ApplyPatch, ApplyPatchArgs
from dsv4.tools.edit_file import EditFile, EditFileArgs
from dsv4.tools.preview import preview_edit
from dsv4.tools.workspace import Workspace
from dsv4.tools.write_file import WriteFile, WriteFileArgs


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_edit_preview_is_the_diff_and_writes_nothing(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\ny = 2\n")
    before = snapshot(tmp_path)
    preview = preview_edit(EditFile(), EditFileArgs(path="a.py", old_string="y = 2", new_string="y = 3"),
                           Workspace(tmp_path))
    assert preview.error is None and preview.files == ["a.py"]
    assert "--- a/a.py" in preview.diff and "-y = 2\n" in preview.diff and "+y = 3\n" in preview.diff
    assert snapshot(tmp_path) == before


def test_patch_preview_with_add_delete_and_move_writes_nothing(tmp_path):
    (tmp_path / "old.txt").write_text("gone\n")
    (tmp_path / "keep.sh").write_text("echo 1\n")
    (tmp_path / "keep.sh").chmod(0o755)
    before = snapshot(tmp_path)
    patch = ("*** Begin Patch\n*** Delete File: old.txt\n*** Add File: new.txt\n+hello\n"
             "*** Update File: keep.sh\n*** Move to: moved.sh\n@@\n-echo 1\n+echo 2\n*** End Patch\n")
    preview = preview_edit(ApplyPatch(), ApplyPatchArgs(patch=patch), Workspace(tmp_path))
    assert preview.error is None, preview.error
    assert "+++ /dev/null" in preview.diff and "-gone" in preview.diff
    assert "+++ b/new.txt" in preview.diff and "+hello" in preview.diff
    assert "+++ b/moved.sh" in preview.diff and "+echo 2" in preview.diff
    assert sorted(preview.files) == ["keep.sh", "moved.sh", "new.txt", "old.txt"]
    assert snapshot(tmp_path) == before and (tmp_path / "keep.sh").stat().st_mode & 0o777 == 0o755


def test_a_refused_edit_previews_as_its_error(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    preview = preview_edit(EditFile(), EditFileArgs(path="a.py", old_string="nothing like it", new_string="z"),
                           Workspace(tmp_path))
    assert preview.diff == "" and preview.error and "a.py" in preview.error


def test_a_new_file_previews_against_nothing(tmp_path):
    preview = preview_edit(WriteFile(), WriteFileArgs(path="src/n.py", content="print(1)"), Workspace(tmp_path))
    assert "+print(1)" in preview.diff and "No newline at end of file" in preview.diff
    assert not (tmp_path / "src").exists()
