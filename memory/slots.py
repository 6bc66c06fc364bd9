"""Subject slots of preferences: what an instruction is about, with its value removed.

"From now on, always run the tests with pytest -x" and "Run the tests with nox." are about the same thing
(the slot "test runner") and differ in the value ("pytest -x", "nox"); a new value in an occupied slot replaces
the old one. The slot is computed by rules, never by a model:

1. framing is dropped ("from now on", "always", "please", "make sure to", "I want you to", ...), and a
   leading "never" / "don't" / "avoid" makes the statement negative;
2. a known topic (indentation, quote style, line length, Python version, log level, reply language, ...) or
   a tool family (a subject such as "run the tests" / "format the code", or a bare "use pnpm") names the
   slot outright: "use tabs" and "indent with 4 spaces" are both "indentation", "run the tests with nox"
   and "use pytest for testing" are both "test runner";
3. otherwise a positive statement is split at its value: "S with/using/via V", "S in V", "S to V",
   "S should be V", "use V for/to S", "when you S, use V"; the slot is S, normalised: articles,
   possessives, light verbs (write, keep, use, make, ...) and the preposition dropped, simple plurals
   singular, synonyms such as execute -> run ("write commit messages in English" and "use German for commit
   messages" are both "commit message");
4. a statement with no value to split ("always run the tests before committing", any negative one) is its
   own subject: its value is its polarity, so "never X" and "always X" share the slot X.

The second rule (slot_match.py) compares slot strings by embedding similarity against a threshold calibrated
per embedder in evals/memory/slots_bench.py; it only applies to slots of kind 2-3 (`valued`), where a value
was removed: two polarity-only statements with similar wording ("run the tests / the linter before
committing") are different instructions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Subject:
    slot: str  # the normalised subject, e.g. "test runner", "commit message", "indentation"
    value: str  # what was removed from the statement, e.g. "pytest -x", or "always" / "never"
    valued: bool  # a value was removed (rules 2-3), so similar slots may be compared by embedding


LANGUAGES = ("english|german|french|spanish|italian|portuguese|chinese|japanese|korean|russian|dutch|polish|"
             "swedish|turkish|hindi|arabic")
# Topics whose value is a choice: a new statement about the topic replaces the old one whatever it says.
TOPICS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((name, re.compile(pattern, re.IGNORECASE)) for name, pattern in (
    ("indentation", r"\b(?:indent\w*|tabs|(?:\d+|two|four|eight) spaces)\b"),
    ("quote style", r"\b(?:single|double) quotes?\b|\bquote style\b|\bquot(?:e|ing) strings\b"),
    ("naming convention", r"\b(?:camel[ _]?case|snake[ _]?case|pascal[ _]?case|kebab[ _-]?case|naming convention)\b"),
    ("line length", r"\b(?:line length|line width|max(?:imum)? line|lines? (?:under|below|to|at most|of at most) \d+|"
                    r"wrap (?:lines|code) at \d+|\d+ (?:characters|chars|columns) (?:per|a) line)\b"),
    ("python version", r"\bpython (?:version|\d+(?:\.\d+)?\+?)(?!\w)"),
    ("log level", r"\blog(?:ging)? level\b|\blog at \w+ level\b"),
    ("semicolons", r"\bsemicolons?\b"),
    ("trailing commas", r"\btrailing commas?\b"),
    ("reply language", rf"\b(?:answer|reply|respond|write|talk|speak|communicate)(?: to me| back)? (?:only )?in "
                       rf"(?:{LANGUAGES})\b|\b(?:answers|replies|responses) (?:should be |must be )?in (?:{LANGUAGES})\b"),
))
# Tool families: the value names the slot ("use pnpm" and "install packages with yarn" are one choice).
TOOL_FAMILIES: tuple[tuple[str, re.Pattern[str]], ...] = tuple((name, re.compile(pattern, re.IGNORECASE)) for name, pattern in (
    ("test runner", r"\b(?:pytest|nox|tox|unittest|jest|vitest|mocha|nose2?)\b"),
    ("formatter", r"\b(?:black|ruff format|prettier|autopep8|yapf|gofmt|rustfmt)\b"),
    ("linter", r"\b(?:ruff(?! format)|flake8|pylint|eslint|pyflakes)\b"),
    ("type checker", r"\b(?:mypy|pyright|pytype|pyre)\b"),
    ("package manager", r"\b(?:npm|pnpm|yarn|bun|pip|uv|poetry|pipenv|conda)\b"),
))
# Subjects that name a family in words: "run the tests with" is the test runner slot.
FAMILY_SUBJECTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((name, re.compile(pattern)) for name, pattern in (
    ("test runner", r"^(?:run test|running test|test|testing|test runner|test command|run test command)(?: with| is)?$"),
    ("formatter", r"^(?:format(?: code| file| source)?|formatting|code formatting|run formatter|formatter|"
                  r"code formatter)(?: with| is)?$"),
    ("linter", r"^(?:lint(?: code| file)?|linting|run linter|linter|check style|style check)(?: with| is)?$"),
    ("type checker", r"^(?:type ?check(?: code)?|type ?checking|check type|run type checker|type checker)(?: with| is)?$"),
    ("package manager", r"^(?:(?:install|add|add new) (?:dependency|package|dep)|manage (?:dependency|package)|package manager|"
                        r"dependency manager)(?: with| is)?$"),
))

FRAMING = re.compile(
    r"^(?:(?:ok(?:ay)?|so|and|also|but|oh|please|pls|btw|note|remember|actually|hey|alright|wait|instead|hence|"
    r"from now on|going forward|from here on(?: out)?|henceforth|in (?:the )?future|for (?:all )?future (?:work|tasks)|"
    r"always|make sure (?:to|you|that you)|be sure to|remember to|try to|i want you to|i'd like you to|"
    r"i would like you to|i need you to|you should|you must|you need to|we should|let's|let us|kindly|"
    r"(?:the )?rule(?: is)?|preference|i prefer(?: to| that you)?|prefer(?: to)?|you will|you'll)[,:]?\s+)+",
    re.IGNORECASE)
TRAILING = re.compile(r"(?:[,;]?\s+(?:from now on|going forward|in (?:the )?future|please|thanks|thank you|"
                      r"henceforth|for now|from here on(?: out)?|ok|okay))+\s*$", re.IGNORECASE)
NEGATIVE = re.compile(r"^(?:never|(?:don't|do not|dont)(?: ever)?|avoid|stop|no longer|quit)\s+", re.IGNORECASE)
# "use V for S" / "stick with V for S": the purpose S is the subject, V the value.
USE_FOR = re.compile(r"^(?:use|run|stick (?:to|with)|go with|pick|choose|prefer|rely on|switch to)\s+(?P<value>.+?)\s+"
                     r"(?:for|to|when|as (?:the|our|my|a|an))\s+(?P<subject>.+)$")
# "use Google-style docstrings": the value as an adjective of the subject.
USE_STYLE = re.compile(r"^(?:use|write|prefer)\s+(?P<value>[\w.+#-]+)[- ]style\s+(?P<subject>.+)$")
# "when you run the tests, use nox": the same, subject first.
WHEN_USE = re.compile(r"^(?:when|whenever|if)\s+(?:you\s+|we\s+)?(?P<subject>.+?),?\s+(?:use|run|pick|choose)\s+"
                      r"(?P<value>.+)$")
# "use pnpm", "run nox": a bare tool is a choice in its family.
USE_ONLY = re.compile(r"^(?:use|run|stick (?:to|with)|go with|pick|choose|prefer|rely on|switch to)\s+(?P<value>.+)$")

# "S with V", "S in V", "S to V", "S should be V": the first such word after the subject splits it.
SPLIT = re.compile(r"^(?P<subject>.+?)\s+(?P<prep>with|using|via|through|in|to|as|under|against|into|onto|follows?|"
                   r"should follow|must follow|should use|must use|should be|must be|shall be|are|is|=|:)\s+"
                   r"(?P<value>.+)$")
PREPOSITION = {"using": "with", "via": "with", "through": "with", "should use": "with", "must use": "with",
               "should be": "is", "must be": "is", "shall be": "is", "are": "is", "=": "is", ":": "is",
               "follow": "is", "follows": "is", "should follow": "is", "must follow": "is", "against": "to",
               "into": "to", "onto": "to"}
# "should be done by black", "should be run with nox": the participle belongs to the subject.
PARTICIPLE = re.compile(r"^(?P<verb>\w+(?:ed|en|wn|un|ne|t))\s+(?:by|with|using|via|as|in)\s+(?P<value>.+)$")
DROP = frozenset("the a an my our your all any every its their this these those".split())
# Words that carry no subject in a valued slot: "format dates as", "use V for dates", "dates should be" are
# all about "date"; the preposition is dropped too (rule 1 compares what the choice is about, not its grammar).
LIGHT = frozenset("write written keep make have put use set get go be done should must shall will can format formatted".split())
SYNONYMS = {"execute": "run", "launch": "run", "invoke": "run", "suite": "", "unit": "", "commits": "commit",
            "msg": "message", "msgs": "message", "responses": "answer", "response": "answer", "replies": "answer",
            "reply": "answer", "respond": "answer", "dependencies": "dependency", "deps": "dependency"}
WORD = re.compile(r"[\w'+#./-]+")


def _words(text: str) -> list[str]:
    out = []
    for word in WORD.findall(re.sub(r"(?<=[a-z])-(?=[a-z])", " ", text.lower())):
        word = SYNONYMS.get(word, word)
        if not word or word in DROP:
            continue
        # Simple plurals singular, applied alike to both sides of every comparison: tests -> test.
        if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
            word = word[:-1]
        out.append(word)
    return out


def strip_framing(text: str) -> tuple[str, bool]:
    """(the instruction without its framing words, whether it is negative)."""
    text = " ".join(text.replace("`", "").split()).strip(" .!,;")
    previous = None
    while previous != text:
        previous = text
        text = FRAMING.sub("", text).strip(" ,")
        text = TRAILING.sub("", text).strip(" .!,;")
    negative = bool(NEGATIVE.match(text))
    return NEGATIVE.sub("", text).strip(" ,"), negative


def _family(subject_words: str) -> str | None:
    for name, pattern in FAMILY_SUBJECTS:
        if pattern.match(subject_words):
            return name
    return None


def subject(text: str) -> Subject | None:
    """The slot of one preference statement, or None when it names nothing to hold a value for."""
    body, negative = strip_framing(text)
    if not body:
        return None
    for name, pattern in TOPICS:
        if pattern.search(body):
            return Subject(slot=name, value=body, valued=True)
    lower = body.lower()
    polarity = "never" if negative else "always"
    if negative:
        words = " ".join(_words(lower))
        return Subject(slot=words, value=polarity, valued=False) if len(words.split()) >= 2 else None
    use_for = USE_FOR.match(lower) or WHEN_USE.match(lower) or USE_STYLE.match(lower)
    if use_for:
        return _valued(use_for.group("subject"), use_for.group("value"))
    split = SPLIT.match(re.sub(r"\s*:\s+", " : ", lower))
    if split:
        prep, value = PREPOSITION.get(split.group("prep"), split.group("prep")), split.group("value")
        participle = PARTICIPLE.match(value) if prep == "is" else None
        head = split.group("subject")
        if prep == "is" and value.startswith("in "):  # "commit messages should be in English"
            prep, value = "in", value[3:]
        elif participle:  # "should be run with nox": the subject is "run"
            head, prep, value = f"{participle.group('verb')} {head}", "with", participle.group("value")
        found = _valued(head, value)
        if found is not None:
            return found
    use_only = USE_ONLY.match(lower)
    tool = _tool_family(use_only.group("value").split()[0]) if use_only else None
    if use_only and tool:
        return Subject(slot=tool, value=use_only.group("value"), valued=True)
    words = " ".join(_words(lower))
    return Subject(slot=words, value=polarity, valued=False) if len(words.split()) >= 2 else None


def _valued(head: str, value: str) -> Subject | None:
    """The slot of a statement split into its subject words and its value."""
    words = _words(head)
    family = _family(" ".join(words)) or _family(" ".join(w for w in words if w not in LIGHT))
    if family:
        return Subject(slot=family, value=value, valued=True)
    content = [w for w in words if w not in LIGHT]
    return Subject(slot=" ".join(content), value=value, valued=True) if content else None


def same_value(a: Subject, b: Subject) -> bool:
    """Two statements of one slot say the same thing ("Run the tests with nox" / "always test with nox")."""
    return a.slot == b.slot and _words(a.value) == _words(b.value)


def _tool_family(value: str) -> str | None:
    for name, pattern in TOOL_FAMILIES:
        if pattern.search(value):
            return name
    return None
