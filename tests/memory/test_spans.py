from __future__ import annotations

import json
import unicodedata

import pytest

from dsv4.memory.spans import MARKER, contains_spans, distinctive_spans, find_spans, fold, marker, memory_spans, redact

TEXT = 'From now on, run the tests with "pytest -x" in src/app_main.py on Python 3.11 (token zq7-ultra-42).'


def test_spans_are_the_text_its_values_quotes_identifiers_numbers_and_paths() -> None:
    spans = distinctive_spans(TEXT, values=["pytest -x", "nox"])
    assert spans[0] == TEXT  # longest first: the whole sentence is one marker where it appears whole
    assert {"pytest -x", "src/app_main.py", "3.11", "zq7-ultra-42", "nox"} <= set(spans)
    assert not {"From", "tests", "run", "Python", "on"} & set(spans)  # ordinary words are not distinctive


@pytest.mark.parametrize("text, expected", [
    ("Call parse_config() with retryCount=3", {"parse_config", "retryCount"}),
    ("Deploy to https://staging.example.com/api as ops@example.com", {"https://staging.example.com/api",
                                                                      "ops@example.com"}),
    ("Use the --no-verify flag and `make check`", {"--no-verify", "make check"}),
    ("The port is 8443 and the limit 5", {"8443"}),  # "5": one digit is chance
    ("Keep 'very secret phrase' private", {"very secret phrase"}),
    ("Use numpy.linalg.norm and v2", {"numpy.linalg.norm"}),
])
def test_span_kinds(text: str, expected: set[str]) -> None:
    spans = set(distinctive_spans(text))
    assert expected <= spans
    assert "5" not in spans and "v2" not in spans


def test_found_across_case_and_whitespace() -> None:
    assert redact("please RUN   PYTEST\n-X now", ["pytest -x"]) == ("please RUN   [forgotten] now", 1)


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_found_inside_json_escaped_once_twice_and_three_times(levels: int) -> None:
    secret = 'the "zq7 hint" is café ✓ 😀 and C:\\temp\\x'
    stored = json.dumps({"text": f"Earlier: {secret}. Keep going.", "n": 1})  # the secret escaped once
    for _ in range(levels - 1):
        stored = json.dumps({"arguments": stored})  # tool arguments inside a logged message: once more
    out, count = redact(stored, [secret])
    assert count == 1
    for _ in range(levels - 1):
        out = json.loads(out)["arguments"]  # still valid JSON at every level
    assert json.loads(out) == {"text": f"Earlier: {MARKER}. Keep going.", "n": 1}


def test_unicode_escapes_surrogate_pairs_and_ascii_only_json() -> None:
    secret = "Grüße 😀 zq7"
    stored = json.dumps({"t": f"x {secret} y"}, ensure_ascii=True)
    assert "\\ud83d\\ude00" in stored and "\\u00fc" in stored
    out, count = redact(stored, [secret])
    assert count == 1 and json.loads(out) == {"t": f"x {MARKER} y"}


def test_python_repr_escapes() -> None:
    stored = repr("caf\xe9 \U0001f600 token").encode("ascii", "backslashreplace").decode()
    assert "\\xe9" in stored and "\\U0001f600" in stored
    assert contains_spans(stored, ["café 😀 token"])


def test_unicode_normal_forms_and_case_folding() -> None:
    composed, decomposed = "Ångström café", unicodedata.normalize("NFD", "Ångström café")
    assert composed != decomposed
    assert contains_spans(f"see {decomposed}", [composed]) and contains_spans(f"see {composed}", [decomposed])
    assert contains_spans("STRASSE 12", ["straße 12"])
    assert fold("  Pytest  -X ") == "pytest -x"


def test_word_edges() -> None:
    assert redact("equinox and nox, noxious", ["nox"]) == (f"equinox and {MARKER}, noxious", 1)
    assert find_spans("run_nox_now", ["nox"]) == []  # inside an identifier it is another word
    assert redact("flag:-x!", ["-x"]) == (f"flag:{MARKER}!", 1)  # a needle that starts with punctuation


def test_marker_rule_joins_runs_and_keeps_the_rest_readable() -> None:
    out, count = redact("use nox (nox -s tests), then stop", ["nox", "nox -s tests"])
    assert (out, count) == (f"use {MARKER}), then stop", 1)
    out, count = redact("first nox, second part, nox again", ["nox"])
    assert (out, count) == (f"first {MARKER}, second part, {MARKER} again", 2)
    assert marker("m-1") == "[forgotten memory m-1]" and marker() == MARKER
    assert redact("x nox y", ["nox"], marker("m-1")) == ("x [forgotten memory m-1] y", 1)


def test_markers_never_merge_across_json_strings() -> None:
    stored = json.dumps({"nox": "nox", "list": ["nox", "nox"]})
    out, count = redact(stored, ["nox"])
    assert json.loads(out) == {MARKER: MARKER, "list": [MARKER, MARKER]} and count == 4


def test_nothing_to_find() -> None:
    assert redact("unrelated text", ["pytest -x"]) == ("unrelated text", 0)
    assert find_spans("", ["x" * 5]) == [] and find_spans("abc", []) == [] and find_spans("abc", ["  "]) == []


def test_a_backslash_that_is_not_an_escape_is_kept() -> None:
    # As written, "\\nox" holds "nox" after a backslash (a word edge); decoded, "\\n" would be a newline.
    assert redact("path C:\\qz\\nox and \\", ["nox"]) == (f"path C:\\qz\\{MARKER} and \\", 1)
    assert redact("a \\q nox", ["nox"]) == (f"a \\q {MARKER}", 1)


def test_memory_spans_add_a_preference_value() -> None:
    assert "nox -s tests" in memory_spans("Run the tests with nox -s tests.")
    assert memory_spans("Always run the tests before committing.") == ["Always run the tests before committing."]


def test_the_distinctive_parts_of_a_host_or_path_are_spans_of_their_own() -> None:
    spans = distinctive_spans("The staging host is stg-qzC31.example.test")
    assert "stg-qzC31" in spans and "stg-qzC31.example.test" in spans
    assert "example" not in spans and "test" not in spans  # plain words of the name are not distinctive
    assert redact('{"pattern": "stg-qzC31"}', spans)[0] == '{"pattern": "[forgotten]"}'
