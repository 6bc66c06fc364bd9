"""The one error a bad configuration raises: every problem found, each naming its file (and TOML line)."""

from __future__ import annotations


class ConfigError(Exception):
    """The CLI maps it to exit 2 and prints `str(error)`: one line per problem, all of them, not the first."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            text = f"configuration error: {self.problems[0]}"
        else:
            text = f"{len(self.problems)} configuration errors:\n" + "\n".join(f"  {p}" for p in self.problems)
        super().__init__(text)
