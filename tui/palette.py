"""Every slash command in the command palette (Ctrl+P): picking one runs it, or puts it in the prompt
when it needs an argument."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from . import commands


class SlashCommandProvider(Provider):
    def _run(self, name: str) -> None:
        chat = self.app.chat
        if chat is not None:
            chat.palette_command(name)

    def _entries(self) -> list[tuple[str, str]]:
        """(name, help) of the built-in commands, then the custom ones (agent/custom_commands.py)."""
        chat = self.app.chat
        custom = chat.custom_commands().commands.values() if chat is not None else []
        return ([(c.name, c.help) for c in commands.COMMANDS.values()]
                + [(c.name, f"{c.description} ({c.source} command)") for c in custom])

    async def discover(self) -> Hits:
        for name, help in self._entries():
            yield DiscoveryHit(f"/{name}", partial(self._run, name), help=help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help in self._entries():
            score = matcher.match(f"/{name} {help}")
            if score > 0:
                yield Hit(score, matcher.highlight(f"/{name}"), partial(self._run, name), help=help)
