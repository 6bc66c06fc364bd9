"""Undo never writes through a symlink: a folder the turn replaced by a link to outside is put back as a
folder, and what cannot be restored safely is named instead of reported as success."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from dsv4.tools.checkpoints import CheckpointStore, RestoreIncomplete, undo_last_turn


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "__init__.py").write_text("precious, not ours\n")
    return folder


def test_folder_replaced_by_a_link_comes_back_as_a_folder(calc_repo, outside):
    store = CheckpointStore(calc_repo)
    store.capture("s", 1)
    shutil.rmtree(calc_repo / "calc")
    os.symlink(outside, calc_repo / "calc")  # what a turn's `bash` may do
    restored = undo_last_turn(calc_repo, "s")
    assert "calc/__init__.py" in restored
    assert (outside / "__init__.py").read_text() == "precious, not ours\n" and sorted(os.listdir(outside)) == ["__init__.py"]
    assert not (calc_repo / "calc").is_symlink() and (calc_repo / "calc" / "__init__.py").read_text().startswith("def add")


def test_a_link_that_cannot_be_replaced_is_reported_not_written_through(calc_repo, outside):
    store = CheckpointStore(calc_repo)
    checkpoint = store.capture("s", 1)
    # The turn ignores the folder and swaps it for a link, so the link is not part of any checkpoint.
    (calc_repo / ".gitignore").write_text("__pycache__/\n*.pyc\ncalc\n")
    shutil.rmtree(calc_repo / "calc")
    os.symlink(outside, calc_repo / "calc")
    (calc_repo / "tests" / "test_calc.py").write_text("changed\n")
    with pytest.raises(RestoreIncomplete) as caught:
        store.restore(checkpoint)
    assert list(caught.value.refused) == ["calc/__init__.py"] and "symlink" in caught.value.refused["calc/__init__.py"]
    assert "could not restore 1" in str(caught.value) and "calc/__init__.py" in str(caught.value)
    assert caught.value.restored == [".gitignore", "tests/test_calc.py"]
    assert (calc_repo / "tests" / "test_calc.py").read_text().startswith("from calc")
    assert (outside / "__init__.py").read_text() == "precious, not ours\n" and sorted(os.listdir(outside)) == ["__init__.py"]

