"""The WeCom AI bot (智能机器人) channel: the bot that lives in a building's group chat.

In: `GET/POST /wecom/aibot`, an encrypted JSON callback (`{"encrypt": ...}`, the same AES/SHA1 scheme
as the app, receive id "" for a company's own bot) sent when the bot is @-mentioned in a group or
spoken to privately. Same signature, replay and dedup rules as the app callback.

Out: one POST to the message's `response_url` (valid an hour, usable once), so several replies to
one message are joined into one post (`joins_replies`, honoured by the sender). A reply with no
response_url (a scheduled message to an AI-bot group), or a PRIVATE reply to a message written in a
group (health details never go to a group), cannot be sent by the AI bot: it goes through the WeCom
app channel when that is configured (appchat for groups, message/send for people), else it fails
with a clear error.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from bot.channels.base import BadRequest, Delivery, SendError, check_fresh, read_body, refuse, text_response
from bot.channels.wecom.crypto import check_wecom_signature, verify_wecom_url, wecom_decrypt
from bot.httperrors import unix_time
from bot.inbox import Unstorable
from bot.model import Inbound

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

# "@机器人 3-2-501 36.5": WeCom puts the mention(s) first, followed by a space or U+2005.
_MENTIONS = re.compile(r"^(?:[\s\u2005]*@[^\s\u2005]+)+[\s\u2005]*")


def strip_mentions(text: str) -> str:
    return _MENTIONS.sub("", text, count=1).strip()


def open_json_callback(token: str, aes_key: str, receive_ids: tuple[str, ...], query: Any, body: bytes,
                       now_ts: float) -> str:
    """Verifies and decrypts a JSON-bodied WeCom callback; returns the plaintext (not yet parsed:
    Tencent's own sample plaintext is not valid JSON)."""
    try:
        outer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(400, "malformed JSON") from None
    encrypt = outer.get("encrypt") if isinstance(outer, dict) else None
    if not isinstance(encrypt, str) or not encrypt:
        raise BadRequest(400, "no encrypt field")
    ts = query.get("timestamp", "")
    check_wecom_signature(token, query.get("msg_signature"), ts, query.get("nonce", ""), encrypt)
    check_fresh(ts, now_ts)
    return wecom_decrypt(aes_key, encrypt, receive_ids)


class AIBotChannel:
    name = "aibot"
    joins_replies = True

    def __init__(self, rt: Runtime):
        s = rt.settings
        assert s.wecom_aibot_token and s.wecom_aibot_aes_key
        self.rt = rt
        self.token = s.wecom_aibot_token
        self.aes_key = s.wecom_aibot_aes_key
        # WeCom documents "" for a company's own bot; the corp id is accepted too (see wecom_decrypt).
        self.receive_ids = ("",) + ((s.wecom_corp_id,) if s.wecom_corp_id else ())
        self.timeout = aiohttp.ClientTimeout(total=10)
        self._session: aiohttp.ClientSession | None = None

    def setup_routes(self, app: web.Application) -> None:
        app.router.add_get("/wecom/aibot", self.verify_url)
        app.router.add_post("/wecom/aibot", self.callback)

    async def verify_url(self, request: web.Request) -> web.Response:
        try:
            plain = verify_wecom_url(request.query, self.token, self.aes_key, self.receive_ids,
                                     self.rt.clock.now().timestamp())
        except BadRequest as exc:
            return refuse(self.rt, self.name, exc)
        return text_response(200, plain)

    async def callback(self, request: web.Request) -> web.Response:
        try:
            body = await read_body(request)
            plain = open_json_callback(self.token, self.aes_key, self.receive_ids, request.query, body,
                                       self.rt.clock.now().timestamp())
            inbound = self.normalise(plain)
        except BadRequest as exc:
            return refuse(self.rt, self.name, exc)
        if inbound is not None:
            try:
                await self.rt.pipeline.accept(inbound)
            except Unstorable:
                return refuse(self.rt, self.name, BadRequest(400, "message cannot be stored"))
            except Exception as exc:  # noqa: BLE001 - not stored: WeCom must retry
                log.warning("aibot callback %s not stored (%s): answering 503", inbound.msg_id, type(exc).__name__)
                return text_response(503, "try again")
        # An empty answer: no passive reply (replies go to response_url from the outbox).
        return web.Response(status=200, text="")

    def normalise(self, plain: str) -> Inbound | None:
        try:
            data = json.loads(plain)
        except ValueError:
            raise BadRequest(400, "malformed JSON inside") from None
        if not isinstance(data, dict):
            raise BadRequest(400, "expected a JSON object")
        sender = _obj(data, "from").get("userid")
        if not sender:
            return None  # the bot itself, or another bot: never answered (no reply loops)
        msgid = data.get("msgid")
        if not msgid or not isinstance(msgid, str | int) or not isinstance(sender, str | int):
            raise BadRequest(400, "no msgid" if not msgid else "msgid and from.userid must be strings")
        mtype = str(data.get("msgtype") or "unknown").lower()
        text = ""
        if mtype == "text":
            if not isinstance(data.get("text", {}), dict):
                raise BadRequest(400, "text must be an object")
            content = _obj(data, "text").get("content")
            if content is not None and not isinstance(content, str):
                raise BadRequest(400, "text.content must be a string")
            text = strip_mentions(content or "")
            kind = "text"
        elif mtype == "event":
            kind = f"event:{str(_obj(data, 'event').get('eventtype') or '').lower()}"[:32]
        else:
            kind = mtype[:32]
        group = data.get("chattype") == "group"
        chat_id = str(data.get("chatid") or "") if group else ""
        return Inbound(channel=self.name, msg_id=str(msgid), sender_id=str(sender), text=text,
                       sent_at=self._sent_at(data), chat_id=chat_id or None, kind=kind,
                       reply_to=str(data["response_url"]) if data.get("response_url") else None)

    def _sent_at(self, data: dict[str, Any]) -> datetime:
        # Missing, malformed or absurd (year 5 million): our own clock.
        return unix_time(data.get("create_time"), self.rt.settings.tz) or self.rt.clock.now()

    # -- sending -----------------------------------------------------------------------------------

    def _direct(self, d: Delivery) -> bool:
        """May this go to the response_url? Only a reply where the message was written: into its
        group, or privately to a private message — never a private reply into a group."""
        if not d.reply_to:
            return False
        if d.to_chat is not None:
            return True
        return d.inbound_chat_id == ""

    async def pace(self, d: Delivery) -> float:
        if self._direct(d):
            return 0.0
        wecom = self.rt.channels.get("wecom")
        return await wecom.pace(d) if wecom is not None else 0.0

    async def send(self, d: Delivery) -> None:
        if self._direct(d):
            used_key = "aibot:used:" + hashlib.sha1((d.reply_to or "").encode()).hexdigest()
            if await self.rt.state.get(used_key) is None and await self._post(d):
                await self.rt.state.set(used_key, "1", ttl=3600)
                return
            # Used up or expired: fall through to the app.
        wecom = self.rt.channels.get("wecom")
        if wecom is None:
            raise SendError("aibot: no response_url for this message and no WeCom app to send it "
                            "(set GRIDBOT_WECOM_* to let the app post to groups and people)", permanent=True)
        await wecom.send(replace(d, channel="wecom"))

    async def _post(self, d: Delivery) -> bool:
        """POSTs to the response_url; False when WeCom says it cannot be used (any more)."""
        assert d.reply_to
        body = {"msgtype": "markdown" if d.kind == "markdown" else "text"}
        body[body["msgtype"]] = {"content": d.text}
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        try:
            async with self._session.post(d.reply_to, json=body) as resp:
                if resp.status >= 500:
                    raise SendError(f"http_{resp.status}")
                if resp.status >= 400:
                    return False
                data = await resp.json(content_type=None)
        except (TimeoutError, asyncio.TimeoutError):
            raise SendError("timeout") from None
        except aiohttp.ClientError as exc:
            raise SendError(f"network:{type(exc).__name__}") from None
        except ValueError:
            raise SendError("bad_json") from None
        code = int(data.get("errcode", 0) or 0) if isinstance(data, dict) else 0
        if code in (45009, 45033):
            raise SendError(f"{code}:too often", retry_after=60.0)
        if code == -1:
            raise SendError("-1:busy")
        return code == 0

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _obj(data: dict[str, Any], key: str) -> dict[str, Any]:
    """`data[key]` when it is an object, else {} (a list or a string where WeCom puts an object)."""
    v = data.get(key)
    return v if isinstance(v, dict) else {}
