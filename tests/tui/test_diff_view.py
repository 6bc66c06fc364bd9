"""How a unified diff is drawn: hunk bodies by their line counts, code highlighted by the file's language, the
changed lines tinted, long diffs cut."""

from __future__ import annotations

from dsv4.tui.widgets.diff_view import MAX_DIFF_LINES, MAX_HIGHLIGHTED_CHARS, diff_content


def token_styles(content, line_no: int) -> set[str]:
    """The styles on line `line_no` other than its sign, its tint and the plain text colour: the highlighting."""
    return set(styles_at(content, line_no)) - {"on $error 18%", "on $success 18%", "bold $text-error",
                                               "bold $text-success", "$text-muted", "$text"}


def styles_at(content, line_no: int) -> list[str]:
    """The styles of the spans that start on line `line_no` of the drawn diff."""
    starts = [0]
    for line in content.plain.split("\n"):
        starts.append(starts[-1] + len(line) + 1)
    return [str(span.style) for span in content.spans if starts[line_no] <= span.start < starts[line_no + 1]]


def test_a_removed_line_that_looks_like_a_file_header_stays_in_its_hunk():
    diff = ("--- a/notes.md\n+++ b/notes.md\n@@ -1,2 +1,1 @@\n--- a rule, now gone\n keep\n"
            "--- a/calc.py\n+++ b/calc.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n")
    drawn = diff_content(diff, width=40)
    lines = drawn.plain.split("\n")
    assert lines[3] == "--- a rule, now gone".ljust(40)  # a removed line, tinted to the width
    assert "on $error 18%" in styles_at(drawn, 3) and "bold" not in styles_at(drawn, 3)
    assert styles_at(drawn, 5) == ["bold"]  # the next file's header
    assert any(s == "$text-warning" for s in styles_at(drawn, 9))  # calc.py's code is highlighted: 2 is a number


def test_code_of_a_file_without_a_known_language_is_plain_and_no_newline_notes_are_kept():
    diff = "--- a/data.unknownext\n+++ b/data.unknownext\n@@ -1 +1 @@\n-old\n\\ No newline at end of file\n+new\n"
    drawn = diff_content(diff)
    assert drawn.plain.split("\n")[3:] == ["-old", "\\ No newline at end of file", "+new"]
    assert "$text-muted italic" in styles_at(drawn, 4)
    assert not token_styles(drawn, 3) and not token_styles(drawn, 5)


def test_a_deleted_file_is_highlighted_by_its_old_name_and_a_long_diff_is_cut():
    deleted = diff_content("--- a/gone.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-import os\n")
    assert token_styles(deleted, 3)  # `import os` highlighted as Python: the old name gave the language
    body = "".join(f"+line {n}\n" for n in range(MAX_DIFF_LINES + 50))
    long = diff_content(f"--- /dev/null\n+++ b/big.txt\n@@ -0,0 +1,{MAX_DIFF_LINES + 50} @@\n{body}")
    assert long.plain.split("\n")[-1] == "… 53 more lines (/diff shows all)"
    assert len(long.plain.split("\n")) == MAX_DIFF_LINES + 1


def test_a_hunk_with_more_code_than_is_highlighted_is_drawn_plain_and_whole():
    line = "x = [" + "1, " * (MAX_HIGHLIGHTED_CHARS // 3) + "]"  # one minified line past the limit
    drawn = diff_content(f"--- a/big.py\n+++ b/big.py\n@@ -1 +1 @@\n-x = 0\n+{line}\n")
    assert drawn.plain.split("\n")[4] == "+" + line
    assert not token_styles(drawn, 3) and not token_styles(drawn, 4)
    assert token_styles(diff_content("--- a/small.py\n+++ b/small.py\n@@ -1 +1 @@\n-x = 0\n+x = 1\n"), 4)
