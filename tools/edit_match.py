"""Where an edit applies. This first form matches exactly; the graded matcher of the edit-engine issue replaces it."""

from __future__ import annotations


class EditRefused(Exception):
    """The edit was not applied; the message tells the model what to do instead."""


def replace_exact(text: str, old: str, new: str, replace_all: bool) -> tuple[str, int]:
    if old == "":
        raise EditRefused("old_string is empty; use write_file to create or replace a whole file")
    if old == new:
        raise EditRefused("old_string and new_string are identical; nothing to change")
    count = text.count(old)
    if count == 0:
        if new and new in text:
            return text, 0  # the replacement is already there: a retried edit, not a failure
        raise EditRefused("old_string not found; read the file again and copy the text exactly")
    if count > 1 and not replace_all:
        lines = [text[:i].count("\n") + 1 for i in _positions(text, old)]
        raise EditRefused(
            f"old_string matches {count} places (lines {', '.join(map(str, lines))}); "
            "add surrounding lines to make it unique, or set replace_all"
        )
    return text.replace(old, new) if replace_all else text.replace(old, new, 1), count if replace_all else 1


def _positions(text: str, needle: str) -> list[int]:
    found, start = [], 0
    while (index := text.find(needle, start)) != -1:
        found.append(index)
        start = index + len(needle)
    return found
