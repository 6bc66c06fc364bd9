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

    async def discover(self) -> Hits:
        for command in commands.COMMANDS.values():
            yield DiscoveryHit(f"/{command.name}", partial(self._run, command.name), help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in commands.COMMANDS.values():
            score = matcher.match(f"/{command.name} {command.help}")
            if score > 0:
                yield Hit(score, matcher.highlight(f"/{command.name}"), partial(self._run, command.name),
                          help=command.help)
