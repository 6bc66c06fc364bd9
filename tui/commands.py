"""Slash commands typed at the prompt. Each maps to a handler on the chat screen; unknown ones get a hint."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SlashCommand:
    name: str
    usage: str
    help: str


COMMANDS: dict[str, SlashCommand] = {c.name: c for c in [
    SlashCommand("help", "/help", "list the slash commands"),
    SlashCommand("quit", "/quit", "leave dsv4-code (also /exit, Ctrl+Q)"),
    SlashCommand("exit", "/exit", "leave dsv4-code"),
    SlashCommand("session", "/session", "show the session id, model and token use"),
    SlashCommand("undo", "/undo", "restore the files changed by the last turn"),
    SlashCommand("rewind", "/rewind N", "restore the files as they were N turns ago"),
    SlashCommand("remember", "/remember TEXT", "remember a fact or preference (key=value to make it override)"),
    SlashCommand("forget", "/forget ID|KEY", "forget a memory everywhere it is stored"),
    SlashCommand("pin", "/pin ID", "always keep a memory in context"),
    SlashCommand("memory", "/memory", "show the memory block the model sees"),
    SlashCommand("context", "/context", "what of the repository is in context, and what changed since"),
    SlashCommand("compact", "/compact [FOCUS]", "summarise older steps now (/compact undo takes the last one back)"),
]}


def parse(text: str) -> tuple[str, str] | None:
    """('name', 'rest') for a slash command, None for a normal prompt. '//x' sends '/x' as a prompt."""
    if not text.startswith("/") or text.startswith("//"):
        return None
    name, _, rest = text[1:].partition(" ")
    return name.lower(), rest.strip()


def help_text() -> str:
    return "\n".join(f"{c.usage:<14} {c.help}" for c in COMMANDS.values())
