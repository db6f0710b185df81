"""The WeCom app (企业微信自建应用) channel: `/wecom/callback` in, `message/send` and `appchat/send` out.

The callback path does only what it must before answering: cap the body, parse the outer XML
(xmltodict refuses entity declarations; a DOCTYPE is refused before parsing), check the signature
(constant-time) and the timestamp (±300 s against the Clock), decrypt, read the message with
wechatpy's `parse_message`, and store it in the inbox. Everything else happens in the workers.

Sends go through `bot.channels.wecom.client.WeComAPI`, paced under WeCom's published limits.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import xmltodict
from aiohttp import web

from bot.channels.base import BadRequest, Delivery, SendError, check_fresh, read_body, refuse, text_response
from bot.channels.wecom.client import WeComAPI
from bot.channels.wecom.crypto import check_wecom_signature, verify_wecom_url, wecom_decrypt
from bot.httperrors import unix_time
from bot.inbox import Unstorable
from bot.model import Inbound

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

def parse_outer_xml(body: bytes) -> dict[str, Any]:
    """The callback's outer XML as a dict; anything suspicious or malformed is a 400."""
    head = body[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in body.lower():
        raise BadRequest(400, "DTD not allowed")
    try:
        doc = xmltodict.parse(body, disable_entities=True)
    except Exception as exc:  # noqa: BLE001 - expat errors, ValueError for entities, ...
        raise BadRequest(400, "malformed XML") from exc
    xml = doc.get("xml") if isinstance(doc, dict) else None
    if not isinstance(xml, dict) or not isinstance(xml.get("Encrypt"), str):
        raise BadRequest(400, "no Encrypt element")
    return xml


class WeComChannel:
    name = "wecom"

    # WeCom's published limits (PLATFORM.md). An app may send a member 30 messages a minute and
    # 1,000 an hour (extras are dropped silently by WeCom, so we must pace, not rely on 45009);
    # appchat: about 20,000 recipient-messages a minute for the whole company.
    per_user_minute = 30
    per_user_hour = 1000
    app_per_minute = 2000
    appchat_recipients_per_minute = 20000
    default_chat_size = 50

    def __init__(self, rt: Runtime):
        s = rt.settings
        assert s.wecom_corp_id and s.wecom_token and s.wecom_aes_key and s.wecom_secret
        self.rt = rt
        self.corp_id = s.wecom_corp_id
        self.token = s.wecom_token
        self.aes_key = s.wecom_aes_key
        self.agent_id = s.wecom_agent_id
        self.api = WeComAPI(rt, s.wecom_corp_id, s.wecom_secret, s.wecom_agent_id, s.wecom_api_base)

    def setup_routes(self, app: web.Application) -> None:
        app.router.add_get("/wecom/callback", self.verify_url)
        app.router.add_post("/wecom/callback", self.callback)

    # -- callbacks -------------------------------------------------------------------------------

    async def verify_url(self, request: web.Request) -> web.Response:
        try:
            plain = verify_wecom_url(request.query, self.token, self.aes_key, (self.corp_id,),
                                     self.rt.clock.now().timestamp())
        except BadRequest as exc:
            return refuse(self.rt, self.name, exc)
        return text_response(200, plain)

    async def callback(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            body = await read_body(request)
            outer = parse_outer_xml(body)
            ts = q.get("timestamp", "")
            check_wecom_signature(self.token, q.get("msg_signature"), ts, q.get("nonce", ""), outer["Encrypt"])
            check_fresh(ts, self.rt.clock.now().timestamp())
            plain = wecom_decrypt(self.aes_key, outer["Encrypt"], (self.corp_id,))
            inbound = self.normalise(plain)
        except BadRequest as exc:
            return refuse(self.rt, self.name, exc)
        if inbound is None:
            return text_response(200, "success")
        try:
            await self.rt.pipeline.accept(inbound)
        except Unstorable:
            return refuse(self.rt, self.name, BadRequest(400, "message cannot be stored"))
        except Exception as exc:  # noqa: BLE001 - not stored: WeCom must retry
            log.warning("wecom callback %s not stored (%s): answering 503", inbound.msg_id, type(exc).__name__)
            return text_response(503, "try again")
        return text_response(200, "success")

    def normalise(self, plain_xml: str) -> Inbound | None:
        """The decrypted message as an Inbound; None for one we must not answer (our own)."""
        from wechatpy.enterprise import parse_message

        try:
            msg = parse_message(plain_xml)
            raw: dict[str, Any] = msg._data  # the fields as WeCom sent them
        except Exception as exc:  # noqa: BLE001 - signed by WeCom but unreadable: refuse, don't crash
            raise BadRequest(400, "unreadable message") from exc
        sender = str(raw.get("FromUserName") or "")
        if not sender or sender == "sys" or (self.agent_id and sender == self.agent_id):
            return None  # no reply loops: nothing the app or the system itself posted
        try:
            created = int(raw.get("CreateTime") or 0)
        except ValueError:
            created = 0
        sent_at = unix_time(created, self.rt.settings.tz) or self.rt.clock.now()  # absurd: our clock
        mtype = str(raw.get("MsgType") or "unknown").lower()
        if mtype == "event":
            kind = f"event:{str(raw.get('Event') or '').lower()}"[:32]
            msg_id = f"{sender}:{created}"  # events carry no MsgId; WeCom's retry repeats these two
        else:
            kind = mtype[:32]
            msg_id = str(raw.get("MsgId") or f"{sender}:{created}")
        text = str(raw.get("Content") or "") if mtype == "text" else ""
        if mtype == "voice":
            # WeCom's own speech recognition (when the app has it on): read like typed words
            text = str(raw.get("Recognition") or "")
        return Inbound(channel=self.name, msg_id=msg_id, sender_id=sender, text=text, sent_at=sent_at,
                       chat_id=None, kind=kind)

    # -- sending ---------------------------------------------------------------------------------

    async def pace(self, d: Delivery) -> float:
        n = len(split_text(d.text))  # a long text is several messages to WeCom
        if d.to_user is not None:
            u = d.to_user
            return await self.rt.state.acquire([
                (f"wecom:user:{u}:m", self.per_user_minute, 60, n),
                (f"wecom:user:{u}:h", self.per_user_hour, 3600, n),
                ("wecom:app:m", self.app_per_minute, 60, n),
            ])
        size = await self.chat_size(d.to_chat or "")
        cost = min(size * n, self.appchat_recipients_per_minute)
        return await self.rt.state.acquire([("wecom:appchat:m", self.appchat_recipients_per_minute, 60, cost)])

    async def chat_size(self, chat_id: str) -> int:
        """Members of an appchat group (what its messages cost under the company's limit), cached a day."""
        key = f"wecom:chatsize:{chat_id}"
        got = await self.rt.state.get(key)
        if got:
            return int(got)
        try:
            data = await self.api.call("GET", "/cgi-bin/appchat/get", params={"chatid": chat_id})
            size = max(1, len(data.get("chat_info", {}).get("userlist", [])))
        except SendError:
            size = self.default_chat_size
        await self.rt.state.set(key, str(size), ttl=86400)
        return size

    async def send(self, d: Delivery) -> None:
        # WeCom cuts a text message at 2,048 bytes without a word: a long ledger goes as several
        # messages, split between lines. (A retry after a partial failure repeats the parts already
        # sent: the at-least-once trade-off of bot/sender.py.)
        for part in split_text(d.text):
            content = {"content": part}
            if d.to_user is not None:
                body: dict[str, Any] = {"touser": d.to_user, "msgtype": "text", "agentid": _int(self.agent_id),
                                        "text": content, "safe": 0}
                data = await self.api.call("POST", "/cgi-bin/message/send", json=body)
                if data.get("invaliduser"):
                    raise SendError("81013:user not found", permanent=True)
            else:
                await self.api.call("POST", "/cgi-bin/appchat/send",
                                    json={"chatid": d.to_chat, "msgtype": "text", "text": content, "safe": 0})

    async def close(self) -> None:
        await self.api.close()


def split_text(text: str, limit: int = 2000) -> list[str]:
    """Pieces of at most `limit` UTF-8 bytes, cut between lines where possible."""
    if len(text.encode()) <= limit:
        return [text]
    parts: list[str] = []
    cur = ""
    for line in text.splitlines(keepends=True):
        while len(line.encode()) > limit:  # one overlong line: cut it by characters
            cut = len(line)
            while len(line[:cut].encode()) > limit:
                cut = cut * 3 // 4
            if cur:
                parts.append(cur)
                cur = ""
            parts.append(line[:cut])
            line = line[cut:]
        if len((cur + line).encode()) > limit:
            parts.append(cur)
            cur = ""
        cur += line
    if cur:
        parts.append(cur)
    return [p.rstrip("\n") for p in parts if p.strip()]


def _int(v: str | None) -> int | str:
    try:
        return int(v or 0)
    except ValueError:
        return v or ""
