"""One module per capability; `build_dispatcher()` includes their routers in a fixed order."""

from __future__ import annotations

from bot.dispatch import Dispatcher


def build_dispatcher() -> Dispatcher:
    """The order matters: staff commands first (private only; each capability's verbs, then help and
    the staff fallback), then registration of unknown senders, then check-ins and emergencies, then
    requests (alone, or after a check-in that asked for one), then the private how-to; group
    chatter falls through to silence. Timers are routed by name, in the same order."""
    from handlers import (
        checkin,
        escalation,
        ledger,
        media,
        notices,
        quarantine,
        registration,
        requests,
        retention,
        worker,
    )

    return Dispatcher([escalation.commands, requests.commands, quarantine.commands, ledger.commands,
                       notices.commands, checkin.commands, registration.commands, worker.router, media.router, registration.router, checkin.lists, checkin.router, requests.router,
                       quarantine.router, escalation.router, ledger.router, retention.router, checkin.fallback_router])
