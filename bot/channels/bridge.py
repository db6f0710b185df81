"""The bridge channel: a gateway that relays ordinary WeChat groups (no official bot API there).

In: `POST /bridge/events`, JSON `{"msg_id", "chat_id", "chat_name", "sender_id", "sender_name", "text",
"ts"}` signed with `X-Gridbot-Timestamp` and `X-Gridbot-Signature` = hex HMAC-SHA256 of
`timestamp + "." + body` under GRIDBOT_BRIDGE_SECRET. An empty or null `chat_id` is a private message.
Out: signed JSON `{"chat_id" or "user_id", "text", "id"}` to GRIDBOT_BRIDGE_SEND_URL; `id` is the
outbox row id, so the gateway can drop the rare duplicate of an at-least-once send. Sends are paced
at Settings.bridge_rate a minute per chat and overall: ordinary WeChat bans chatty accounts.

Without GRIDBOT_BRIDGE_SECRET the route answers 404 with what to set (bot/app.py).
The gateway's own account (GRIDBOT_BRIDGE_BOT_ID) is ignored, so the bot never answers itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from bot.channels.base import BadRequest, Delivery, SendError, check_fresh, read_body, refuse, text_response
from bot.inbox import Unstorable
from bot.model import Inbound

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)
# What a gateway may send: jielong is WeChat's native 接龙 (the list as text), voice carries the
# gateway's transcript (if any) as text, recall names the recalled message in "recalls".
KINDS = ("text", "jielong", "voice", "image", "file", "recall")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class BridgeChannel:
    name = "bridge"

    def __init__(self, rt: Runtime, bot_id: str | None = None):
        s = rt.settings
        assert s.bridge_secret
        self.rt = rt
        self.secret = s.bridge_secret
        self.send_url = s.bridge_send_url
        self.rate = max(1, s.bridge_rate)
        self.bot_id = bot_id or s.bridge_bot_id
        self.timeout = aiohttp.ClientTimeout(total=10)
        self._session: aiohttp.ClientSession | None = None

    def setup_routes(self, app: web.Application) -> None:
        app.router.add_post("/bridge/events", self.events)

    async def events(self, request: web.Request) -> web.Response:
        try:
            body = await read_body(request)
            ts = request.headers.get("X-Gridbot-Timestamp", "")
            check_fresh(ts, self.rt.clock.now().timestamp())
            got = request.headers.get("X-Gridbot-Signature", "")
            if not got or not hmac.compare_digest(sign(self.secret, ts, body).encode(), got.strip().lower().encode()):
                raise BadRequest(403, "bad signature")
            inbound = self.normalise(body)
        except BadRequest as exc:
            return refuse(self.rt, self.name, exc)
        if inbound is None:
            return web.json_response({"ok": True, "ignored": True})
        try:
            row_id = await self.rt.pipeline.accept(inbound)
        except Unstorable:
            return refuse(self.rt, self.name, BadRequest(400, "message cannot be stored"))
        except Exception as exc:  # noqa: BLE001 - not stored: the gateway must retry
            log.warning("bridge event %s not stored (%s): answering 503", inbound.msg_id, type(exc).__name__)
            return text_response(503, "try again")
        return web.json_response({"ok": True, "duplicate": row_id is None})

    def normalise(self, body: bytes) -> Inbound | None:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest(400, "malformed JSON") from None
        if not isinstance(data, dict):
            raise BadRequest(400, "expected a JSON object")
        msg_id, sender, text = data.get("msg_id"), data.get("sender_id"), data.get("text")
        if not isinstance(msg_id, str | int) or not str(msg_id) or not isinstance(sender, str) or not sender:
            raise BadRequest(400, "msg_id and sender_id are required")
        if text is None and data.get("kind") in ("image", "file", "recall", "voice"):
            text = ""
        if not isinstance(text, str):
            raise BadRequest(400, "text is required")
        chat = data.get("chat_id")
        if chat is not None and not isinstance(chat, str):
            raise BadRequest(400, "chat_id must be a string or null")
        if self.bot_id and hmac.compare_digest(sender.encode(), self.bot_id.encode()):
            return None
        ts = data.get("ts")
        try:
            sent_at = datetime.fromtimestamp(float(ts), self.rt.settings.tz) if ts is not None else self.rt.clock.now()
        except (TypeError, ValueError, OverflowError, OSError):
            raise BadRequest(400, "ts must be unix seconds") from None
        kind = data.get("kind") or "text"
        if kind not in KINDS:
            raise BadRequest(400, f"kind must be one of {', '.join(KINDS)}")
        if kind == "recall":
            # the recalled message's id travels as the text: the inbox row needs no extra column
            recalls = data.get("recalls")
            if not isinstance(recalls, str | int) or not str(recalls):
                raise BadRequest(400, "a recall needs the recalled msg_id in recalls")
            text = str(recalls)
        return Inbound(channel=self.name, msg_id=str(msg_id), sender_id=sender, text=text, sent_at=sent_at,
                       chat_id=chat or None, sender_name=_str(data.get("sender_name")),
                       chat_name=_str(data.get("chat_name")), kind=kind)

    async def pace(self, d: Delivery) -> float:
        to = d.to_chat or f"user:{d.to_user}"
        return await self.rt.state.acquire([(f"bridge:chat:{to}", self.rate, 60, 1), ("bridge:all", self.rate, 60, 1)])

    async def send(self, d: Delivery) -> None:
        if not self.send_url:
            raise SendError("GRIDBOT_BRIDGE_SEND_URL is not set", permanent=True)
        payload: dict[str, Any] = {"chat_id": d.to_chat} if d.to_chat else {"user_id": d.to_user}
        payload.update(text=d.text, id=d.id)
        body = json.dumps(payload, ensure_ascii=False).encode()
        ts = str(int(self.rt.clock.now().timestamp()))
        headers = {"Content-Type": "application/json", "X-Gridbot-Timestamp": ts,
                   "X-Gridbot-Signature": sign(self.secret, ts, body)}
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        try:
            async with self._session.post(self.send_url, data=body, headers=headers) as resp:
                if resp.status < 300:
                    return
                if resp.status == 429:
                    raise SendError("http_429", retry_after=_retry_after(resp.headers.get("Retry-After")))
                raise SendError(f"http_{resp.status}", permanent=400 <= resp.status < 500)
        except (TimeoutError, asyncio.TimeoutError):
            raise SendError("timeout") from None
        except aiohttp.ClientError as exc:
            raise SendError(f"network:{type(exc).__name__}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _retry_after(v: str | None) -> float:
    try:
        return max(1.0, float(v or 60))
    except ValueError:
        return 60.0
