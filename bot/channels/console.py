"""The console channel: in-process, for `gridbot chat`, `gridbot demo` and tests ("say X, expect Y").

It has no routes; messages come in through `handle_now` (bot/app.py) and replies land in
`transcript` and, if given, a printer callback.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from bot.channels.base import Delivery


class ConsoleChannel:
    name = "console"

    def __init__(self, printer: Callable[[Delivery], None] | None = None):
        self.printer = printer
        self.transcript: list[Delivery] = []

    def setup_routes(self, app: web.Application) -> None:
        return None

    async def pace(self, d: Delivery) -> float:
        return 0.0

    async def send(self, d: Delivery) -> None:
        self.transcript.append(d)
        if self.printer is not None:
            self.printer(d)

    async def close(self) -> None:
        return None
