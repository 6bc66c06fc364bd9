"""edit_file and multi_edit as the agent calls them: through the Toolbox, on real files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dsv4.tools.toolbox import Toolbox
from dsv4.tools.workspace import Workspace


def call(root: Path, name: str, syntax_gate: str = "warn", **arguments):
    toolbox = Toolbox(Workspace(root, syntax_gate=syntax_gate))
    tool, args = toolbox.prepare(name, json.dumps(arguments))
    return toolbox.execute(tool, args)


def test_new_tools_are_offered(tmp_path):
    names = {s["function"]["name"] for s in Toolbox(Workspace(tmp_path)).schemas()}
    assert {"edit_file", "multi_edit", "apply_patch", "write_file"} <= names


def test_edit_keeps_crlf_tabs_mode_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "tool.py"
    path.write_bytes(b"def run(x):\r\n\tif x:\r\n\t\treturn 1\r\n\treturn 0\r\n")
    os.chmod(path, 0o751)
    result = call(tmp_path, "edit_file", path="tool.py", old_string="    if x:\n        return 1\n",
                  new_string="    if x:\n        print(x)\n        return 1\n")
    assert not result.is_error and "relaxing whitespace" in result.text and result.files_changed == ["tool.py"]
    assert path.read_bytes() == b"def run(x):\r\n\tif x:\r\n\t\tprint(x)\r\n\t\treturn 1\r\n\treturn 0\r\n"
    assert path.stat().st_mode & 0o777 == 0o751
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tool.py"]


def test_refusal_reaches_the_model_and_file_is_untouched(tmp_path):
    path = tmp_path / "a.py"
    path.write_text("x = 1\nx = 1\n")
    result = call(tmp_path, "edit_file", path="a.py", old_string="x = 1", new_string="x = 2")
    assert result.is_error and "matches 2 places (lines 1, 2)" in result.text
    assert path.read_text() == "x = 1\nx = 1\n"
    missing = call(tmp_path, "edit_file", path="nope.py", old_string="a", new_string="b")
    assert missing.is_error and "write_file" in missing.text


def test_syntax_gate_warns_by_default_and_can_refuse(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f():\n    return 1\n")
    warned = call(tmp_path, "edit_file", path="m.py", old_string="    return 1\n", new_string="    return (1\n")
    assert not warned.is_error and "syntax error" in warned.text and "m.py:2" in warned.text
    assert warned.data["syntax_error"]["line"] >= 2 and "(1" in path.read_text()
    path.write_text("def f():\n    return 1\n")
    refused = call(tmp_path, "edit_file", syntax_gate="refuse", path="m.py", old_string="    return 1\n", new_string="    return (1\n")
    assert refused.is_error and "would break the syntax" in refused.text
    assert path.read_text() == "def f():\n    return 1\n"


def test_syntax_gate_ignores_files_that_were_already_broken_and_unknown_languages(tmp_path):
    (tmp_path / "broken.js").write_text("function f( {\n  return 1;\n}\n")
    result = call(tmp_path, "edit_file", path="broken.js", old_string="return 1;", new_string="return 2;")
    assert not result.is_error and "syntax" not in result.text
    (tmp_path / "notes.txt").write_text("(((\n")
    assert "syntax" not in call(tmp_path, "edit_file", path="notes.txt", old_string="(((", new_string="((").text


def test_javascript_and_typescript_grammars_are_checked(tmp_path):
    (tmp_path / "a.ts").write_text("const x: number = 1;\n")
    result = call(tmp_path, "edit_file", path="a.ts", old_string="= 1;", new_string="= ;")
    assert "syntax error" in result.text
    (tmp_path / "b.js").write_text("const y = [1, 2];\n")
    assert "syntax error" in call(tmp_path, "edit_file", path="b.js", old_string="2]", new_string="2").text


def test_multi_edit_applies_in_order_or_not_at_all(tmp_path):
    path = tmp_path / "c.py"
    path.write_text("a = 1\nb = 2\n")
    bad = call(tmp_path, "multi_edit", path="c.py", edits=[{"old_string": "a = 1", "new_string": "a = 10"},
                                                           {"old_string": "zzz", "new_string": "q"}])
    assert bad.is_error and "edit 2 of 2" in bad.text and path.read_text() == "a = 1\nb = 2\n"
    good = call(tmp_path, "multi_edit", path="c.py", edits=[{"old_string": "a = 1", "new_string": "a = 10"},
                                                            {"old_string": "a = 10\nb = 2", "new_string": "a = 10\nb = 20"}])
    assert not good.is_error and path.read_text() == "a = 10\nb = 20\n"
    assert [e["stage"] for e in good.data["edits"]] == ["exact", "exact"]
    again = call(tmp_path, "multi_edit", path="c.py", edits=[{"old_string": "a = 1\n", "new_string": "a = 10\n"}])
    assert not again.is_error and "already applied" in again.text


@pytest.mark.parametrize("name", ["edit_file", "multi_edit"])
def test_edit_tools_refuse_paths_outside_the_root(tmp_path, name):
    outside = tmp_path.parent / f"outside-{name}.txt"
    outside.write_text("x\n")
    args = {"path": str(outside)}
    args |= ({"old_string": "x", "new_string": "y"} if name == "edit_file"
             else {"edits": [{"old_string": "x", "new_string": "y"}]})
    assert call(tmp_path, name, **args).is_error and outside.read_text() == "x\n"
