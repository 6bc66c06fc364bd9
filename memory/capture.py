"""Automatic capture of explicit preference statements in a user message, as keyed candidates.

Only explicit statements count: a sentence with "from now on" / "going forward" / "in the future", or an
imperative that starts with "always" / "never" / "don't ever". Questions, "never mind" and descriptions
("it always fails") are not preferences. The key is deterministic: a known topic (indentation, quotes, ...)
when the statement names one, so "use spaces" later supersedes "use tabs"; otherwise the statement's
content words without its polarity, so "never X" supersedes "always X". The caller shows every captured
candidate to the user, who can re-key or forget it.
"""

from __future__ import annotations

import re

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
# Topics whose value is a choice: a new statement about the topic replaces the old one whatever it says.
TOPICS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((name, re.compile(pattern, re.IGNORECASE)) for name, pattern in (
    ("indentation", r"\b(?:indent\w*|tabs|(?:\d+|two|four|eight) spaces)\b"),
    ("quote style", r"\b(?:single|double) quotes?\b|\bquote style\b"),
    ("naming convention", r"\b(?:camel ?case|snake ?case|pascal ?case|kebab ?case|naming convention)\b"),
    ("line length", r"\b(?:line length|line width|max(?:imum)? line|\d+ (?:characters|chars|columns) (?:per|a) line)\b"),
    ("semicolons", r"\bsemicolons?\b"),
    ("trailing commas", r"\btrailing commas?\b"),
    ("reply language", r"\b(?:answer|reply|respond|write|talk|speak) (?:to me )?in (?:english|german|french|spanish|"
                       r"italian|portuguese|chinese|japanese|korean|russian|dutch|polish)\b"),
))
STOPWORDS = frozenset("""a an the to of for in on at by with and or but is are be it this that these those my our your
    me we you i please always never ever dont don't do not no from now going forward future henceforth here out
    when whenever should must will would can could just also so""".split())
POLARITY_WORDS = frozenset({"always", "never", "ever", "dont", "don't", "do", "not", "no", "please"})


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


def _key(content: str) -> str:
    for name, pattern in TOPICS:
        if pattern.search(content):
            return name
    words = [w for w in re.findall(r"[\w'+#.-]+", content.lower()) if w not in STOPWORDS and w not in POLARITY_WORDS]
    words = [w.strip(".") for w in words if w.strip(".")]
    return " ".join(words[:6]) or " ".join(content.lower().split()[:6])


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
        key = _key(content)
        # Within one message the last statement about a key wins, as it would across messages.
        found.pop(key, None)
        found[key] = Candidate(text=statement, key=key, scope=scope)
    return list(found.values())


def _polarity(sentence: str) -> str:
    """The "always " / "never " / "don't ever " words that open an imperative (after any fillers)."""
    match = re.match(rf"^{FILLERS}((?:always|never|(?:don't|do not|dont) ever)\s+)", sentence, re.IGNORECASE)
    return match.group(1) if match else ""
