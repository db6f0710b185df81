"""What every channel adapter offers, and the shared pieces of the callback layer.

An adapter is composed into the application (several may run in one process): its routes verify,
decrypt and normalise a callback into an `Inbound` and hand it to `Pipeline.accept`; its `send`
delivers one outbox row and raises `SendError` when it could not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

if TYPE_CHECKING:
    from storage.models import OutboundMessage

MAX_BODY = 64 * 1024
REPLAY_WINDOW_S = 300

log = logging.getLogger(__name__)


class SendError(Exception):
    """A failed delivery. `permanent` ones are recorded as failed; others are retried with backoff,
    not before `retry_after` seconds when the platform said how long to wait."""

    def __init__(self, reason: str, retry_after: float | None = None, permanent: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.permanent = permanent


@dataclass(frozen=True)
class Delivery:
    """One outbox row as a channel sees it (a detached copy: no session travels with it).

    `inbound_chat_id` is the chat of the message that caused this reply ("" for a private one,
    None when no inbound caused it), so that a channel never posts a private reply into a group.
    """

    id: int
    channel: str
    text: str
    to_user: str | None = None
    to_chat: str | None = None
    kind: str = "reply"
    reply_to: str | None = None
    inbound_id: int | None = None
    inbound_chat_id: str | None = None
    attempts: int = 0

    @classmethod
    def of(cls, row: OutboundMessage, inbound_chat_id: str | None = None) -> Delivery:
        return cls(id=row.id, channel=row.channel, text=row.text, to_user=row.to_user, to_chat=row.to_chat,
                   kind=row.kind, reply_to=row.reply_to, inbound_id=row.inbound_id,
                   inbound_chat_id=inbound_chat_id, attempts=row.attempts)


class Channel(Protocol):
    name: str

    def setup_routes(self, app: web.Application) -> None:
        """Adds the adapter's callback routes (if it has any)."""

    async def pace(self, d: Delivery) -> float:
        """Takes a send slot under the platform's limits: 0.0, or the seconds to wait first."""

    async def send(self, d: Delivery) -> None:
        """Delivers, or raises SendError."""

    async def close(self) -> None: ...


class BadRequest(Exception):
    """A callback to refuse; `status` is the HTTP answer (400, 403, 413)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def read_body(request: web.Request, limit: int = MAX_BODY) -> bytes:
    """The request body, refusing more than `limit` bytes without reading them all (413)."""
    if request.content_length is not None and request.content_length > limit:
        raise BadRequest(413, "body too large")
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise BadRequest(413, "body too large")
    return body


def check_fresh(timestamp: str | None, now_ts: float, window: float = REPLAY_WINDOW_S) -> int:
    """The callback's unix timestamp, if it is within `window` seconds of now (else 403)."""
    try:
        ts = int(timestamp or "")
    except ValueError:
        raise BadRequest(403, "bad timestamp") from None
    if abs(now_ts - ts) > window:
        raise BadRequest(403, "stale timestamp")
    return ts


def text_response(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain")


def refuse(rt: Any, channel: str, exc: BadRequest) -> web.Response:
    """A callback we will not store (bad signature, stale, malformed, too big): counted, answered."""
    metrics = getattr(rt, "metrics", None)
    if metrics is not None:
        metrics.callbacks_refused.labels(channel, str(exc.status)).inc()
    log.info("%s callback refused: %s %s", channel, exc.status, exc.reason)
    return text_response(exc.status, exc.reason)
