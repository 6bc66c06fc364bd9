"""The graded matcher through `apply_edit`: each stage, what it preserves, and the refusals."""

from __future__ import annotations

import pytest

from dsv4.tools.edit_apply import apply_edit, apply_edits
from dsv4.tools.edit_feedback import EditRefused

PY = "import os\n\n\nclass Box:\n    def __init__(self, size):\n        self.size = size\n\n    def area(self):\n        return self.size * self.size\n"


def refused(text: str, old: str, new: str, replace_all: bool = False) -> EditRefused:
    with pytest.raises(EditRefused) as info:
        apply_edit(text, old, new, replace_all)
    return info.value


def test_exact_partial_line_and_replace_all():
    out = apply_edit(PY, "self.size * self.size", "self.size ** 2")
    assert out.stage == "exact" and out.line == 9 and "return self.size ** 2\n" in out.text
    out = apply_edit(PY, "size", "side", replace_all=True)
    assert out.replacements == 5 and "size" not in out.text


def test_trailing_whitespace_in_file_or_quote():
    text = "a = 1   \nb = 2\t\nc = 3\n"
    out = apply_edit(text, "a = 1\nb = 2\n", "a = 10\nb = 20\n")
    assert out.stage == "trailing_whitespace" and out.text == "a = 10\nb = 20\nc = 3\n"
    out = apply_edit("x = 1\ny = 2\n", "x = 1  \ny = 2 \n", "x = 3\ny = 4\n")
    assert out.text == "x = 3\ny = 4\n"


def test_indentation_shift_is_reindented_to_the_file():
    quoted = "def area(self):\n    return self.size * self.size\n"  # one level too shallow
    out = apply_edit(PY, quoted, "def area(self):\n    if self.size < 0:\n        return 0\n    return self.size * self.size\n")
    assert out.stage == "indentation"
    assert "    def area(self):\n        if self.size < 0:\n            return 0\n        return self.size" in out.text


def test_tabs_file_with_space_quote_keeps_tabs():
    text = "def f(x):\n\tif x:\n\t\treturn 1\n\treturn 2\n"
    out = apply_edit(text, "    if x:\n        return 1\n", "    if x:\n        y = 3\n        return y\n")
    assert out.stage == "whitespace"
    assert out.text == "def f(x):\n\tif x:\n\t\ty = 3\n\t\treturn y\n\treturn 2\n"


def test_two_space_quote_into_tab_file_keeps_alignment_remainder():
    text = "function f() {\n\tif (a) {\n\t\tcall(1,\n\t\t     2);\n\t}\n}\n"
    out = apply_edit(text, "  if (a) {\n    call(1,\n         2);\n  }\n",
                     "  if (a) {\n    call(1,\n         3);\n    done();\n  }\n")
    assert out.text == "function f() {\n\tif (a) {\n\t\tcall(1,\n\t\t     3);\n\t\tdone();\n\t}\n}\n"


def test_exact_match_converts_new_lines_to_the_file_indent_style():
    text = "def f():\n\tpass\n"
    out = apply_edit(text, "def f():\n", "def f():\n    x = 1\n")
    assert out.text == "def f():\n\tx = 1\n\tpass\n"


def test_crlf_file_stays_crlf_and_final_newline_is_kept():
    text = "one\r\ntwo\r\nthree"
    out = apply_edit(text, "two\n", "TWO\nand a half\n")
    assert out.text == "one\r\nTWO\r\nand a half\r\nthree"


def test_unicode_punctuation_is_folded():
    out = apply_edit("msg = 'don't'\nx = \"a-b\"\n", "msg = \u2018don\u2019t\u2019\nx = \u201ca\u2013b\u201d\n", "msg = 'ok'\n")
    assert out.stage == "unicode" and out.text == "msg = 'ok'\n"


def test_block_anchor_tolerates_a_misremembered_middle_line():
    text = "def g(a):\n    total = 0\n    for item in a:\n        total += item * 2\n    return total\n"
    quoted = "def g(a):\n    total = 0\n    for item in a:\n        total += item\n    return total\n"
    out = apply_edit(text, quoted, "def g(a):\n    return sum(a) * 2\n")
    assert out.stage == "block_anchor" and out.text == "def g(a):\n    return sum(a) * 2\n"


def test_block_anchor_refuses_a_window_much_longer_than_the_quote():
    text = "start()\n" + "".join(f"step{i}()\n" for i in range(30)) + "end()\n"
    with pytest.raises(EditRefused) as info:
        apply_edit(text, "start()\nstep0()\nstep1()\nend()\n", "nothing()\n")
    assert info.value.data == {"reason": "over_broad", "start": 1, "end": 32}
    assert "over-broad" in str(info.value) and "lines 1-32" in str(info.value)
    assert apply_edit(text, "step3()\n", "x()\n").text.count("\n") == 32  # the file is intact otherwise


def test_multiple_matches_are_refused_with_line_numbers():
    exc = refused("a = 1\nb = 2\na = 1\n", "a = 1", "a = 3")
    assert "matches 2 places (lines 1, 3)" in str(exc) and exc.data["lines"] == [1, 3]
    exc = refused("  x = 1\nx = 1\n", "    x = 1\n", "x = 2\n")  # ambiguous only after relaxing
    assert exc.data["reason"] == "multiple" and exc.data["stage"] != "exact"


def test_not_found_shows_the_closest_lines_with_whitespace_visible():
    exc = refused(PY, "def area(self):\n    return self.size * self.width\n", "x")
    text = str(exc)
    assert "closest text is at lines 8-9" in text and "-    return self.size * self.width" in text
    assert exc.data["closest"]["start"] == 8
    exc = refused("a\tb = 1\n", "zz = 3\n", "q")
    assert "nothing in the file is close" in str(exc)


def test_already_applied_edits_succeed_without_change():
    once = apply_edit("x = 1\ny = 2\n", "x = 1\n", "x = 1\nz = 9\n")  # an insertion: old survives in new
    twice = apply_edit(once.text, "x = 1\n", "x = 1\nz = 9\n")
    assert twice.already_applied and twice.text == once.text
    replaced = apply_edit(PY, "    def area(self):\n        return self.size * self.size\n", "    def area(self):\n        return 4\n")
    again = apply_edit(replaced.text, "    def area(self):\n        return self.size * self.size\n", "    def area(self):\n        return 4\n")
    assert again.already_applied and again.text == replaced.text


def test_deletion_is_already_applied_only_when_the_deleted_lines_are_gone():
    text = "# note\nkeep_this_line = 1\n"
    done = apply_edit(text, "# note\nkeep_this_line = 1\n", "keep_this_line = 1\n")
    assert apply_edit(done.text, "# note\nkeep_this_line = 1\n", "keep_this_line = 1\n").already_applied
    exc = refused("# note!\nkeep_this_line = 1\n", "# other\n# note\nkeep_this_line = 1\n", "keep_this_line = 1\n")
    assert exc.data["reason"] == "not_found"


def test_elided_block_with_markers_on_both_sides_keeps_the_middle():
    text = "def f():\n    a = 1\n    b = 2\n    c = 3\n    return a\n"
    out = apply_edit(text, "def f():\n    # ...\n    return a\n", "def f(x):\n    # ...\n    return a + x\n")
    assert out.stage == "elision"
    assert out.text == "def f(x):\n    a = 1\n    b = 2\n    c = 3\n    return a + x\n"


def test_elided_range_replaced_whole_and_ambiguous_end_refused():
    text = "class A:\n    def f(self):\n        pass\n\n    def g(self):\n        pass\n"
    exc = refused(text, "class A:\n    ...\n        pass\n", "class A:\n    x = 1\n")
    assert "after '...'" in str(exc) and exc.data["lines"] == [3, 6]
    out = apply_edit(text, "class A:\n    # ... existing code ...\n    def g(self):\n        pass\n", "class A:\n    x = 1\n")
    assert out.text == "class A:\n    x = 1\n"


def test_spread_syntax_and_ellipsis_are_not_elision_markers():
    text = "const a = [\n  ...rest,\n  1,\n];\n"
    out = apply_edit(text, "const a = [\n  ...rest,\n", "const a = [\n  ...others,\n")
    assert out.stage == "exact" and "...others" in out.text


def test_refusals_for_empty_identical_and_blank_old():
    assert refused("x\n", "", "y").data["reason"] == "empty"
    assert refused("x\n", "x", "x").data["reason"] == "identical"
    assert refused("x\n", "\n\n", "y").data["reason"] in ("blank", "multiple", "not_found")


def test_apply_edits_is_all_or_nothing_and_names_the_failed_edit():
    with pytest.raises(EditRefused) as info:
        apply_edits(PY, [("import os", "import sys", False), ("nope", "x", False)])
    assert "edit 2 of 2" in str(info.value) and "no edit of this call was applied" in str(info.value)
    outcomes = apply_edits(PY, [("import os", "import sys", False), ("import sys", "import re", False)])
    assert outcomes[-1].text.startswith("import re\n")


def test_reindent_leaves_multiline_string_content_alone():
    text = "class A {\n  verse() {\n    throw new Error('todo');\n  }\n}\n"
    quoted = "verse() {\n  throw new Error('todo');\n}\n"  # one level too shallow
    new = "verse() {\n  return `first\nsecond line\n`;\n}\n"
    out = apply_edit(text, quoted, new, path="song.js")
    assert out.text == "class A {\n  verse() {\n    return `first\nsecond line\n`;\n  }\n}\n"
    # Without knowing the language, every line is shifted: the suffix is what tells strings apart.
    assert "  second line" in apply_edit(text, quoted, new).text


def test_docstring_indentation_does_not_decide_the_file_style():
    text = "'''\n    Module notes,\n    indented with spaces.\n'''\n\n\ndef f(x):\n\tpass\n"
    out = apply_edit(text, "def f(x):\n    pass\n", "def f(x):\n    if x:\n        return 1\n", path="m.py")
    assert out.text.endswith("def f(x):\n\tif x:\n\t\treturn 1\n")
