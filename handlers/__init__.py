"""One module per capability; `build_dispatcher()` includes their routers in a fixed order."""

from __future__ import annotations

from bot.dispatch import Dispatcher


def build_dispatcher() -> Dispatcher:
    # The order matters: staff commands first, then registration of unknown senders, then
    # emergencies and check-ins, then requests. Filled in by the conversations work.
    return Dispatcher([])
