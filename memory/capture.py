"""Automatic capture of explicit preference statements in a user message, as unkeyed preference candidates.

Only explicit statements count: a sentence with "from now on" / "going forward" / "in the future", or an
imperative that starts with "always" / "never" / "don't ever". Questions, "never mind" and descriptions
("it always fails") are not preferences. Candidates carry no key: the store puts each in its subject slot
(memory/slots.py: "run the tests with pytest -x" and "... with nox" share the slot "test runner", "never X"
and "always X" share "X"), so a new value replaces the old one and the result says what it replaced. The
caller shows every captured candidate to the user, who can undo a replacement, re-key or forget it.
"""

from __future__ import annotations

import re

from .slots import subject
from .types import Candidate

FILLERS = r"(?:(?:ok(?:ay)?|so|and|also|but|oh|please|btw|note|remember|actually|hey|alright|wait|instead)[,:]?\s+)*"
FORWARD = re.compile(r"\b(?:from now on|going forward|from here on(?: out)?|henceforth|in (?:the )?future)\b[,:]?\s*",
                     re.IGNORECASE)
IMPERATIVE = re.compile(rf"^{FILLERS}(?:always|never|(?:don't|do not|dont) ever)\s+(?P<rest>.+)$", re.IGNORECASE)
NOT_PREFERENCE = re.compile(r"^\s*(?:never\s*mind|nevermind|always the same|never again\?)", re.IGNORECASE)
USER_SCOPE = re.compile(r"\b(?:in (?:all|every) (?:my |of my )?(?:projects?|repos?|repositories)|everywhere|"
                        r"across (?:all )?(?:my )?(?:projects|repos|repositories)|in any (?:project|repo))\b",
                        re.IGNORECASE)
SESSION_SCOPE = re.compile(r"\b(?:in|for) this (?:session|conversation|chat)\b", re.IGNORECASE)
def _sentences(text: str) -> list[str]:
    # Sentence ends, semicolons and line breaks; code blocks are not statements.
    text = re.sub(r"```.*?```", " ", text, flags=re.DOTALL)
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|;\s*|\n+", text) if s.strip()]


def _statement(sentence: str) -> str | None:
    """The preference content of one sentence, or None when it states no preference."""
    if sentence.endswith("?") or NOT_PREFERENCE.match(sentence):
        return None
    forward = FORWARD.search(sentence)
    if forward:
        after = sentence[forward.end():].strip(" ,.!:")
        before = sentence[:forward.start()].strip(" ,.!:")
        content = after or before
        # "Fix the bug and from now on use tabs": the clause before the trigger is the task, not the preference.
        return content if len(content.split()) >= 2 else None
    imperative = IMPERATIVE.match(sentence)
    if imperative:
        rest = imperative.group("rest").strip(" ,.!:")
        first = rest.split()[0].lower() if rest else ""
        # "always fails", "never returns": a description of behaviour (third person), not an instruction.
        if not rest or (first.endswith("s") and not first.endswith("ss") and first not in {"focus", "has"}):
            return None
        return rest if len(rest.split()) >= 2 else None
    return None


def _scope(sentence: str) -> str:
    if SESSION_SCOPE.search(sentence):
        return "session"
    if USER_SCOPE.search(sentence):
        return "user"
    return "repo"


def capture_preferences(text: str) -> list[Candidate]:
    """Keyed preference candidates from the explicit statements in one user message (pure; no store)."""
    found: dict[str, Candidate] = {}
    for sentence in _sentences(text):
        scope = _scope(sentence)
        bare = re.sub(r"\s+([.,!])", r"\1", " ".join(SESSION_SCOPE.sub("", USER_SCOPE.sub("", sentence)).split())).strip(" ,")
        content = _statement(bare)
        if content is None:
            continue
        imperative = IMPERATIVE.match(bare)
        # Keep "Always"/"Never" (they are the instruction); a "from now on" clause stands alone without it.
        statement = bare[imperative.start("rest") - len(_polarity(bare)):] if imperative and not FORWARD.search(bare) else content
        statement = statement.strip(" ,")
        statement = statement[0].upper() + statement[1:]
        if statement[-1] not in ".!":
            statement += "."
        found_subject = subject(statement)
        slot = found_subject.slot if found_subject else None
        # Within one message the last statement about a subject wins, as it would across messages.
        found.pop(slot or statement, None)
        found[slot or statement] = Candidate(text=statement, key=None, scope=scope, slot=slot)
    return list(found.values())


def _polarity(sentence: str) -> str:
    """The "always " / "never " / "don't ever " words that open an imperative (after any fillers)."""
    match = re.match(rf"^{FILLERS}((?:always|never|(?:don't|do not|dont) ever)\s+)", sentence, re.IGNORECASE)
    return match.group(1) if match else ""


def infer_kind(text: str) -> str:
    """`preference` for a standing instruction ("from now on ...", "always ...", "never ..."), else `fact`: what an
    explicit `remember` without a kind stores, so such instructions get a subject slot and override each other."""
    return "preference" if capture_preferences(text) else "fact"


def source_sentences(message: str, item_text: str) -> list[str]:
    """The sentences of a user message that `capture_preferences` turns into `item_text`: what a forget of the
    captured item removes from the log with it (the user's own words, not only the rewritten memory)."""
    wanted = " ".join(item_text.split()).casefold()
    return [sentence for sentence in _sentences(message)
            if any(" ".join(c.text.split()).casefold() == wanted for c in capture_preferences(sentence))]
