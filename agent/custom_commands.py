"""Custom slash commands: Markdown prompts in `<repo>/.dsv4/commands/NAME.md` and `<config dir>/commands/NAME.md`.

`/NAME ARGS` sends the file's text as the prompt, with `$ARGUMENTS` replaced by ARGS and `$1`..`$9` by its
shell-style words (the format Claude Code uses); a file that names neither gets the arguments appended. An
optional front matter block (`---` lines) may give a `description` and an `argument-hint` for /help and the
palette; other keys (`allowed-tools`, `model`) are ignored, as is Claude Code's `!command` syntax.

Trust: a project's commands load without `dsv4-code trust`. They are prompts, not code: nothing runs when one
loads or expands, the user sends one only by typing its name, and the model's tool calls then go through the same
permission policy as any prompt. What would need trust (choosing the model, widening tools, running a shell
line) is exactly what is ignored. A repository cannot redefine the user's own command of the same name (the
user's wins), nor a built-in one (the front end passes its names as `reserved`).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from ..home import config_home

COMMANDS_DIR = "commands"
PROJECT_DIR = Path(".dsv4") / COMMANDS_DIR
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
FILE_CAP = 64 * 1024  # bytes of one command file
MAX_COMMANDS = 200  # files read from one folder
PLACEHOLDER = re.compile(r"\$(ARGUMENTS|[1-9])")
INVOCATION = re.compile(r"/(?!/)(\S+)\s*(.*)", re.DOTALL)

Source = Literal["project", "user"]


class CustomCommand(BaseModel):
    name: str
    source: Source
    path: Path
    description: str
    argument_hint: str = ""
    template: str

    @property
    def usage(self) -> str:
        return f"/{self.name}" + (f" {self.argument_hint}" if self.argument_hint else "")

    @property
    def takes_arguments(self) -> bool:
        return bool(self.argument_hint) or PLACEHOLDER.search(self.template) is not None

    def expand(self, arguments: str) -> str:
        """The prompt for `/name arguments`. One pass, so `$1` inside an argument is not expanded again."""
        arguments = arguments.strip()
        try:
            words = shlex.split(arguments)
        except ValueError:  # an unbalanced quote: plain whitespace words rather than an error
            words = arguments.split()

        def substitute(match: re.Match[str]) -> str:
            key = match.group(1)
            if key == "ARGUMENTS":
                return arguments
            index = int(key) - 1
            return words[index] if index < len(words) else ""

        if PLACEHOLDER.search(self.template) is None:
            return self.template + (f"\n\nARGUMENTS: {arguments}" if arguments else "")
        return PLACEHOLDER.sub(substitute, self.template)


class CustomCommands(BaseModel):
    commands: dict[str, CustomCommand] = Field(default_factory=dict)
    problems: list[str] = Field(default_factory=list)  # files not loaded, with the reason

    def get(self, name: str) -> CustomCommand | None:
        return self.commands.get(name.lower())

    def expand(self, text: str) -> str | None:
        """The prompt when `text` is `/name args` of a custom command; None otherwise."""
        parsed = parse_invocation(text)
        if parsed is None:
            return None
        command = self.get(parsed[0])
        return command.expand(parsed[1]) if command is not None else None


def parse_invocation(text: str) -> tuple[str, str] | None:
    """('name', 'args') for text that is a slash command ('/name args'); None for a prompt ('//x' sends '/x')."""
    match = INVOCATION.match(text.strip())
    if match is None:
        return None
    return match.group(1).lower(), match.group(2).strip()


def split_front_matter(text: str) -> tuple[dict[str, str], str]:
    """`key: value` lines between a leading `---` and the next `---`, and the body. Not YAML: a front matter
    block we do not understand is kept as part of the prompt rather than guessed at."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return {}, text
    for end in range(1, len(lines)):
        if lines[end].strip() == "---":
            break
    else:
        return {}, text
    fields: dict[str, str] = {}
    for line in lines[1:end]:
        key, colon, value = line.partition(":")
        if not colon:
            if line.strip():
                return {}, text
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        fields[key.strip().lower()] = value
    return fields, "\n".join(lines[end + 1:])


def _read_command(path: Path, source: Source, confine_to: Path | None) -> CustomCommand | str:
    """The command in `path`, or why it is not loaded."""
    name = path.stem.lower()
    if not NAME.match(name):
        return f"{path}: not loaded: a command name is lowercase letters, digits, '-' and '_' (at most 64)"
    if confine_to is not None and not path.resolve().is_relative_to(confine_to.resolve()):
        return f"{path}: not loaded: it links outside {confine_to}"
    if not path.is_file():
        return f"{path}: not loaded: not a regular file"
    with path.open("rb") as handle:
        raw = handle.read(FILE_CAP + 1)
    if len(raw) > FILE_CAP:
        return f"{path}: not loaded: larger than {FILE_CAP // 1024} KiB"
    fields, body = split_front_matter(raw.decode("utf-8", errors="replace"))
    body = body.strip()
    if not body:
        return f"{path}: not loaded: the prompt is empty"
    first_line = next((line.strip().lstrip("#").strip() for line in body.splitlines() if line.strip()), "")
    description = " ".join(fields.get("description", "").split()) or first_line[:80]
    return CustomCommand(name=name, source=source, path=path, description=description[:200],
                         argument_hint=" ".join(fields.get("argument-hint", "").split())[:80], template=body)


def _load_folder(folder: Path, source: Source, found: CustomCommands, reserved: set[str],
                 confine_to: Path | None) -> None:
    if not folder.is_dir():
        return
    files = sorted(path for path in folder.iterdir() if path.suffix.lower() == ".md")
    if len(files) > MAX_COMMANDS:
        found.problems.append(f"{folder}: only the first {MAX_COMMANDS} of {len(files)} command files are loaded")
        files = files[:MAX_COMMANDS]
    for path in files:
        command = _read_command(path, source, confine_to)
        if isinstance(command, str):
            found.problems.append(command)
        elif command.name in reserved:
            found.problems.append(f"{path}: not loaded: /{command.name} is a built-in command")
        elif command.name in found.commands:
            kept = found.commands[command.name]
            found.problems.append(f"{path}: not loaded: your own {kept.path} defines /{command.name}")
        else:
            found.commands[command.name] = command


def load_custom_commands(repo_root: Path | None, reserved: Iterable[str] = ()) -> CustomCommands:
    """The user's commands, then the project's that do not clash with them; read anew on every call (cheap) so a
    command file written during a session is there at once."""
    found = CustomCommands()
    reserved_names = {name.lower() for name in reserved}
    _load_folder(config_home() / COMMANDS_DIR, "user", found, reserved_names, confine_to=None)  # the user's own files
    if repo_root is not None:  # repository content: no file (or folder) that links out of the repository
        _load_folder(repo_root / PROJECT_DIR, "project", found, reserved_names, confine_to=repo_root)
    found.commands = dict(sorted(found.commands.items()))
    return found


class UnknownCommand(Exception):
    """`/name` names no custom command; the message lists those there are."""


def expand_prompt(text: str, repo_root: Path | None, reserved: Iterable[str] = ()) -> str:
    """What a front end sends for `text`: a custom command expanded, `//x` as `/x`, anything else as it is.
    `/name` with a command-like name that is not defined raises UnknownCommand; `/tmp/x is broken` is a prompt."""
    parsed = parse_invocation(text)
    if parsed is None:
        return text[1:] if text.lstrip().startswith("//") else text
    name, arguments = parsed
    if not NAME.match(name):
        return text
    commands = load_custom_commands(repo_root, reserved)
    command = commands.get(name)
    if command is None:
        known = ", ".join(f"/{n}" for n in commands.commands) or "none"
        raise UnknownCommand(f"unknown command /{name} (custom commands: {known}; they are Markdown files in "
                             f"{PROJECT_DIR}/ or {config_home() / COMMANDS_DIR}/); start with '//' to send text "
                             "that begins with '/'" + "".join(f"\n  {problem}" for problem in commands.problems))
    return command.expand(arguments)
