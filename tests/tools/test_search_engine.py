"""search runs patterns on a linear-time engine: catastrophic patterns finish, bad ones get a clear error."""

from __future__ import annotations

import json

import pytest

from dsv4.tools.toolbox import Toolbox
from dsv4.tools.workspace import Workspace


def call(root, name: str, **arguments):
    toolbox = Toolbox(Workspace(root))
    tool, args = toolbox.prepare(name, json.dumps(arguments))
    return toolbox.execute(tool, args)


@pytest.mark.timeout(60)  # Python's backtracking engine needs about 2**60 steps for this file
@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(a|aa)+$", r"(a*)*b", r"^(\w+\s?)*$"])
def test_catastrophic_patterns_finish(tmp_path, pattern):
    (tmp_path / "data.txt").write_text("a" * 60 + "!\n" + "word " * 40 + "!\n")
    result = call(tmp_path, "search", pattern=pattern)
    assert not result.is_error and not result.data["stopped"]


@pytest.mark.parametrize("pattern,hint", [("(", "missing )"), ("(?<=x)y", "no lookaround"), (r"(a)\1", "backreference"),
                                          ("[z-a]", "invalid")])
def test_invalid_patterns_get_a_clear_error(tmp_path, pattern, hint):
    (tmp_path / "a.txt").write_text("x\n")
    result = call(tmp_path, "search", pattern=pattern)
    assert result.is_error and result.text.startswith("error: invalid regular expression") and hint in result.text


def test_ordinary_patterns_match_line_by_line(tmp_path):
    (tmp_path / "a.py").write_text("def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n")
    result = call(tmp_path, "search", pattern=r"^def (\w+)\(")
    assert result.text.splitlines() == ["a.py:1: def add(a, b):", "a.py:5: def mul(a, b):"]
    assert call(tmp_path, "search", pattern=r"(?i)RETURN a \*").data["matches"] == 1
    assert call(tmp_path, "search", pattern=r"b\):$").data["matches"] == 2
    assert call(tmp_path, "search", pattern=r"\s+return").data["matches"] == 2
    assert call(tmp_path, "search", pattern=r"add.*mul").data["matches"] == 0  # never across lines
