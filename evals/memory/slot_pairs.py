"""A labelled set of preference pairs (same subject or not) from hand-written templates, for the slot rule.

    .venv/bin/python evals/memory/slot_pairs.py [--seed 16] [--out evals/memory/data/slot_pairs.json]

Each subject has several phrasings, written the way people say them (not the way memory/slots.py parses
them: some are expected to defeat rule 1), and a list of values. A "same" pair is two phrasings of one
subject with two different values; a "different" pair is two subjects, mostly chosen to be confusable
(the same value word, the same verb, neighbouring tools). Each statement gets a random framing
("From now on, ...", "Please ...", "... going forward."). Deterministic for a seed; the committed file is
the output for the default seed.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

SUBJECTS: dict[str, tuple[list[str], list[str]]] = {
    "test runner": (["run the tests with {v}", "use {v} to run the tests", "tests should be run with {v}",
                     "execute the test suite using {v}", "our test command is {v}", "when you run the tests, use {v}",
                     "run tests via {v}"],
                    ["pytest -x", "nox", "tox -e py311", "pytest -q", "make test", "./scripts/test"]),
    "formatter": (["format the code with {v}", "use {v} for formatting", "run {v} to format files",
                   "the formatter is {v}", "format Python files using {v}", "code formatting should be done by {v}"],
                  ["black", "ruff format", "autopep8", "yapf"]),
    "indentation": (["indent with {v}", "use {v} for indentation", "indentation should be {v}",
                     "indent code using {v}"],
                    ["tabs", "2 spaces", "4 spaces"]),
    "reply language": (["answer in {v}", "reply to me in {v}", "respond in {v}", "talk to me in {v}",
                        "your answers should be in {v}"],
                       ["English", "German", "French", "Spanish"]),
    "commit messages": (["write commit messages in {v}", "commit messages should be in {v}",
                         "keep commit messages in {v}", "use {v} for commit messages", "commit messages in {v}"],
                        ["English", "German", "the imperative mood", "Conventional Commits format"]),
    "docstrings": (["write docstrings in {v} style", "docstrings should follow the {v} style",
                    "use {v}-style docstrings", "format docstrings as {v}"],
                   ["Google", "NumPy", "reST", "Sphinx"]),
    "package manager": (["install packages with {v}", "use {v} as the package manager", "manage dependencies with {v}",
                         "use {v} to install dependencies", "add new dependencies using {v}"],
                        ["npm", "pnpm", "yarn", "uv", "poetry"]),
    "line length": (["keep lines under {v} characters", "the max line length is {v}", "wrap lines at {v} columns",
                     "limit lines to {v} characters"],
                    ["79", "88", "100", "120"]),
    "quote style": (["use {v} quotes", "strings should use {v} quotes", "prefer {v} quotes for strings",
                     "write string literals with {v} quotes"],
                    ["single", "double"]),
    "target branch": (["push to {v}", "open pull requests against {v}", "target the {v} branch with pull requests",
                       "merge feature branches into {v}"],
                      ["main", "develop", "staging", "trunk"]),
    "log level": (["set the log level to {v}", "log at {v} level", "use {v} as the log level",
                   "the default log level should be {v}"],
                  ["DEBUG", "INFO", "WARNING", "ERROR"]),
    "python version": (["target Python {v}", "write code for Python {v}", "the minimum Python version is {v}",
                        "code must run on Python {v}"],
                       ["3.9", "3.11", "3.12", "3.13"]),
    "linter": (["lint with {v}", "use {v} for linting", "run {v} as the linter", "the linter is {v}",
                "check style with {v}"],
               ["ruff", "flake8", "pylint"]),
    "type checker": (["type-check with {v}", "use {v} for type checking", "run {v} to check types",
                      "the type checker is {v}"],
                     ["mypy", "pyright", "pytype"]),
    "test location": (["put new tests in {v}", "new tests go in {v}", "place tests under {v}",
                       "write new tests in {v}"],
                      ["tests/unit", "tests/", "test/integration", "the tests folder"]),
    "variable naming": (["name variables in {v}", "use {v} for variable names", "variables should be {v}",
                         "variable names in {v}"],
                        ["snake_case", "camelCase", "PascalCase"]),
    "date format": (["format dates as {v}", "use {v} for dates", "dates should be written as {v}",
                     "write dates in {v} format"],
                    ["ISO 8601", "DD/MM/YYYY", "YYYY-MM-DD", "MM/DD/YYYY"]),
    "http client": (["make HTTP requests with {v}", "use {v} for HTTP calls", "the HTTP client should be {v}",
                     "call web APIs using {v}"],
                    ["requests", "httpx", "aiohttp", "urllib3"]),
    "config format": (["write config files in {v}", "config files should be {v}", "use {v} for configuration files",
                       "store settings as {v}"],
                      ["YAML", "TOML", "JSON", "INI"]),
    "comment language": (["write code comments in {v}", "comments should be in {v}", "use {v} in code comments",
                          "keep comments in {v}"],
                         ["English", "German", "French"]),
    "test database": (["use {v} for the test database", "run integration tests against {v}",
                       "the test database is {v}", "integration tests should use {v}"],
                      ["SQLite", "Postgres", "MySQL"]),
    "import sorting": (["sort imports with {v}", "use {v} to order imports", "imports should be sorted by {v}",
                        "keep imports ordered using {v}"],
                       ["isort", "ruff", "reorder-python-imports"]),
    "explanations": (["keep explanations {v}", "explanations should be {v}", "make your explanations {v}",
                      "write {v} explanations"],
                     ["short", "detailed", "brief", "thorough"]),
    "error type": (["raise {v} for invalid input", "invalid input should raise {v}", "use {v} for bad arguments",
                    "signal bad arguments with {v}"],
                   ["ValueError", "TypeError", "a custom InvalidInput error"]),
    "license header": (["add a {v} license header to new files", "new files get a {v} header",
                        "put the {v} license at the top of new files"],
                       ["MIT", "Apache-2.0", "GPL-3.0"]),
}
# Pairs of subjects people could mistake for one another: the hard negatives.
CONFUSABLE = [("reply language", "commit messages"), ("reply language", "comment language"),
              ("commit messages", "comment language"), ("test runner", "test database"),
              ("test runner", "test location"), ("formatter", "linter"), ("linter", "type checker"),
              ("docstrings", "comment language"), ("line length", "indentation"), ("package manager", "http client"),
              ("config format", "date format"), ("variable naming", "quote style"), ("import sorting", "linter"),
              ("import sorting", "formatter"), ("log level", "error type"), ("explanations", "reply language"),
              ("test location", "commit messages"), ("target branch", "python version"), ("docstrings", "date format"),
              ("license header", "comment language")]
FRAMES = ["{s}", "From now on, {s}", "Please {s}", "Always {s}", "Going forward, {s}", "{s} from now on",
          "In the future, {s}", "Make sure to {s}", "I want you to {s}", "{s}, please"]


def _statement(rng: random.Random, phrasing: str, value: str) -> str:
    body = phrasing.format(v=value)
    text = rng.choice(FRAMES).format(s=body)
    return text[0].upper() + text[1:] + rng.choice([".", "", "!"])


def generate(seed: int = 16, same_per_subject: int = 8, different: int = 220) -> list[dict]:
    rng = random.Random(seed)
    pairs: list[dict] = []
    for name, (phrasings, values) in SUBJECTS.items():
        for _ in range(same_per_subject):
            p1, p2 = rng.sample(phrasings, 2)
            v1, v2 = rng.sample(values, 2)
            pairs.append({"a": _statement(rng, p1, v1), "b": _statement(rng, p2, v2), "same": True,
                          "subjects": [name, name]})
    names = sorted(SUBJECTS)
    for n in range(different):
        # Two thirds confusable pairs, one third any two subjects.
        first, second = rng.choice(CONFUSABLE) if n % 3 else tuple(rng.sample(names, 2))
        if rng.random() < 0.5:
            first, second = second, first
        (p1s, v1s), (p2s, v2s) = SUBJECTS[first], SUBJECTS[second]
        shared = sorted(set(v1s) & set(v2s))
        v1 = rng.choice(shared) if shared and rng.random() < 0.7 else rng.choice(v1s)
        v2 = v1 if v1 in v2s and rng.random() < 0.7 else rng.choice(v2s)
        pairs.append({"a": _statement(rng, rng.choice(p1s), v1), "b": _statement(rng, rng.choice(p2s), v2),
                      "same": False, "subjects": [first, second]})
    rng.shuffle(pairs)
    return pairs


DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "slot_pairs.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    pairs = generate(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"seed": args.seed, "pairs": pairs}, indent=1, ensure_ascii=False) + "\n")
    same = sum(p["same"] for p in pairs)
    print(f"{len(pairs)} pairs ({same} same subject, {len(pairs) - same} different) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
