"""Slash commands typed at the prompt (and offered in the command palette). Each maps to a handler on the chat
screen (screens/chat_commands.py); unknown ones get a hint."""

from __future__ import annotations

from dataclasses import dataclass

from ..agent.custom_commands import CustomCommands


@dataclass(frozen=True)
class SlashCommand:
    name: str
    usage: str
    help: str
    takes_argument: bool = False


COMMANDS: dict[str, SlashCommand] = {c.name: c for c in [
    SlashCommand("help", "/help", "list the slash commands (F1: the keys)"),
    SlashCommand("model", "/model [NAME]", "show the model; with NAME, use that model from the next turn", True),
    SlashCommand("mode", "/mode [MODE]", "show or change the permission mode: ask, auto-edit, full-auto", True),
    SlashCommand("context", "/context", "what of the repository is in context, and what changed since"),
    SlashCommand("memory", "/memory", "the panel of active memories by scope (forget or pin there)"),
    SlashCommand("remember", "/remember TEXT", "remember a fact or preference (key=value to make it override)", True),
    SlashCommand("forget", "/forget ID|KEY", "forget a memory everywhere it is stored", True),
    SlashCommand("pin", "/pin ID", "always keep a memory in context", True),
    SlashCommand("diff", "/diff", "the changes in the work tree against HEAD"),
    SlashCommand("init", "/init [--force]", "write a starting AGENTS.md from the repo map (--force replaces one)", True),
    SlashCommand("undo", "/undo", "restore the files changed by the last turn"),
    SlashCommand("rewind", "/rewind N", "restore the files as they were N turns ago", True),
    SlashCommand("sessions", "/sessions", "pick another session of this repository to resume"),
    SlashCommand("compact", "/compact [FOCUS|undo]", "summarise older steps now (/compact undo takes the last one back)", True),
    SlashCommand("clear", "/clear", "clear the screen (the session keeps its history)"),
    SlashCommand("cost", "/cost", "tokens and cost of this session so far"),
    SlashCommand("session", "/session", "show the session id, model and token use"),
    SlashCommand("quit", "/quit", "leave dsv4-code (also /exit, Ctrl+Q)"),
    SlashCommand("exit", "/exit", "leave dsv4-code"),
]}


def parse(text: str) -> tuple[str, str] | None:
    """('name', 'rest') for a slash command, None for a normal prompt. '//x' sends '/x' as a prompt."""
    if not text.startswith("/") or text.startswith("//"):
        return None
    name, _, rest = text[1:].partition(" ")
    return name.lower(), rest.strip()


def complete(prefix: str) -> list[SlashCommand]:
    """Commands whose name starts with what follows the '/'."""
    word = prefix.lstrip("/").lower()
    return [c for c in COMMANDS.values() if c.name.startswith(word)]


def help_text(custom: CustomCommands | None = None) -> str:
    custom_rows = [(c.usage, f"{c.description} ({c.source})") for c in custom.commands.values()] if custom else []
    rows = [(c.usage, c.help) for c in COMMANDS.values()]
    width = max(len(usage) for usage, _ in rows + custom_rows) + 2
    text = "\n".join(f"{usage:<{width}}{help}" for usage, help in rows)
    if custom_rows:
        text += "\n\nCustom commands (.dsv4/commands/, and commands/ in your config dir):\n"
        text += "\n".join(f"{usage:<{width}}{help}" for usage, help in custom_rows)
    if custom and custom.problems:
        text += "\n\n" + "\n".join(custom.problems)
    return text
