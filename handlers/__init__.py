"""One module per capability; `build_dispatcher()` includes their routers in a fixed order."""

from __future__ import annotations

from bot.dispatch import Dispatcher


def build_dispatcher() -> Dispatcher:
    """The order matters: staff commands first (private only), then registration of unknown
    senders, then check-ins and emergencies (which also take a request in the same message), then
    requests alone, then the private how-to; group chatter falls through to silence."""
    from handlers import checkin, registration, requests, worker

    return Dispatcher([worker.router, registration.router, checkin.router, requests.router,
                       checkin.fallback_router])
