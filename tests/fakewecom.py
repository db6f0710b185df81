"""A fake WeCom API server (aiohttp, 127.0.0.1, a random port) for tests and benchmarks.

It answers `/cgi-bin/gettoken`, `/cgi-bin/message/send`, `/cgi-bin/appchat/create|send|get`, a
generic AI-bot `response_url` endpoint (`/aibot/response/{key}`) and a bridge gateway's send URL
(`/gateway/send`); it records every accepted send, and fails on demand:

    fake.fail_next(45009)          # the next send answers errcode 45009 (also 42001, 81013, ...)
    fake.fail_next(502)            # ... HTTP 502
    fake.fail_next("hang")         # ... never answers (the client must time out)
    fake.fail_every(3, 45009)      # every third send call fails
    fake.expire_tokens()           # tokens issued so far answer 42001

With `enforce_limits=True` it applies WeCom's published limits (per member 30/min and 1,000/hour
from the app; appchat 20,000 recipient-messages/min company-wide), each multiplied by
`limit_scale`, answering 45009 (and, like WeCom, recording nothing) when exceeded. `time_fn` is the
fake's clock (wall clock by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN_ERRORS = (40014, 42001, 40001)


@dataclass
class Sent:
    kind: str  # message | appchat | response_url | gateway
    body: dict[str, Any]
    at: float
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes = b""

    @property
    def text(self) -> str:
        b = self.body
        if self.kind == "gateway":
            return b.get("text", "")
        inner = b.get(b.get("msgtype", "text")) or {}
        return inner.get("content", "")


class FakeWeCom:
    def __init__(self, corp_id: str = "wwfakecorp", secret: str = "fake-secret", *,
                 enforce_limits: bool = False, limit_scale: float = 1.0,
                 time_fn: Callable[[], float] = time.time, token_ttl: int = 7200,
                 users: set[str] | None = None):
        self.corp_id = corp_id
        self.secret = secret
        self.enforce_limits = enforce_limits
        self.limit_scale = limit_scale
        self.time_fn = time_fn
        self.token_ttl = token_ttl
        self.users = users  # None: every userid exists; else others answer 81013
        self.sends: list[Sent] = []
        self.calls = 0  # send calls, accepted or not
        self.token_requests = 0
        self.chats: dict[str, list[str]] = {}
        self._tokens: dict[str, float] = {}
        self._seq = itertools.count(1)
        self._fail_queue: deque[int | str] = deque()
        self._fail_every: tuple[int, int | str] | None = None
        self._windows: dict[str, deque[tuple[float, int]]] = defaultdict(deque)
        self._runner: web.AppRunner | None = None
        self._release = asyncio.Event()
        self.base_url = ""
        self.app = web.Application()
        r = self.app.router
        r.add_get("/cgi-bin/gettoken", self._gettoken)
        r.add_post("/cgi-bin/message/send", self._message_send)
        r.add_post("/cgi-bin/appchat/create", self._appchat_create)
        r.add_post("/cgi-bin/appchat/send", self._appchat_send)
        r.add_get("/cgi-bin/appchat/get", self._appchat_get)
        r.add_post("/aibot/response/{key}", self._response_url)
        r.add_post("/gateway/send", self._gateway)

    # -- control ---------------------------------------------------------------------------------

    async def start(self) -> str:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def close(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def fail_next(self, what: int | str, times: int = 1) -> None:
        self._fail_queue.extend([what] * times)

    def fail_every(self, n: int, what: int | str = 45009) -> None:
        self._fail_every = (n, what)

    def expire_tokens(self) -> None:
        self._tokens.clear()

    def response_url(self, key: str = "k") -> str:
        return f"{self.base_url}/aibot/response/{key}"

    def sent_to(self, who: str) -> list[Sent]:
        return [s for s in self.sends if who in (s.body.get("touser"), s.body.get("chatid"),
                                                  s.body.get("user_id"), s.body.get("chat_id"))]

    # -- behaviour -------------------------------------------------------------------------------

    def _injected(self) -> int | str | None:
        self.calls += 1
        if self._fail_queue:
            return self._fail_queue.popleft()
        if self._fail_every and self.calls % self._fail_every[0] == 0:
            return self._fail_every[1]
        return None

    async def _failure(self) -> web.Response | None:
        what = self._injected()
        if what is None:
            return None
        if what == "hang":
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._release.wait(), 3600)
            return web.Response(status=504, text="hung")
        if isinstance(what, int) and what >= 500 and what < 600:
            return web.Response(status=what, text="upstream error")
        return web.json_response({"errcode": what, "errmsg": f"injected {what}"})

    def _check_token(self, request: web.Request) -> web.Response | None:
        tok = request.query.get("access_token", "")
        exp = self._tokens.get(tok)
        if exp is None:
            return web.json_response({"errcode": 40014, "errmsg": "invalid access_token"})
        if exp <= self.time_fn():
            return web.json_response({"errcode": 42001, "errmsg": "access_token expired"})
        return None

    def _take(self, key: str, limit: float, window: float, cost: int = 1) -> bool:
        now = self.time_fn()
        q = self._windows[key]
        while q and q[0][0] <= now - window:
            q.popleft()
        if sum(c for _, c in q) + cost > limit:
            return False
        q.append((now, cost))
        return True

    async def _gettoken(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        if request.query.get("corpid") != self.corp_id or request.query.get("corpsecret") != self.secret:
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        tok = f"tok{next(self._seq)}"
        self._tokens[tok] = self.time_fn() + self.token_ttl
        return web.json_response({"errcode": 0, "errmsg": "ok", "access_token": tok,
                                  "expires_in": self.token_ttl})

    async def _message_send(self, request: web.Request) -> web.Response:
        bad = self._check_token(request) or await self._failure()
        if bad is not None:
            return bad
        body = await request.json()
        users = [u for u in str(body.get("touser", "")).split("|") if u]
        if self.users is not None:
            invalid = [u for u in users if u not in self.users]
            if invalid and len(invalid) == len(users):
                return web.json_response({"errcode": 81013, "errmsg": "user & party & tag all invalid"})
        if self.enforce_limits:
            s = self.limit_scale
            for u in users:
                if not (self._take(f"m:{u}:min", 30 * s, 60) and self._take(f"m:{u}:h", 1000 * s, 3600)):
                    return web.json_response({"errcode": 45009, "errmsg": "api freq out of limit"})
        self.sends.append(Sent("message", body, self.time_fn()))
        return web.json_response({"errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": f"m{len(self.sends)}"})

    async def _appchat_create(self, request: web.Request) -> web.Response:
        bad = self._check_token(request)
        if bad is not None:
            return bad
        body = await request.json()
        chatid = body.get("chatid") or f"chat{next(self._seq)}"
        self.chats[chatid] = list(body.get("userlist", []))
        return web.json_response({"errcode": 0, "errmsg": "ok", "chatid": chatid})

    async def _appchat_get(self, request: web.Request) -> web.Response:
        bad = self._check_token(request)
        if bad is not None:
            return bad
        chatid = request.query.get("chatid", "")
        if chatid not in self.chats:
            return web.json_response({"errcode": 86003, "errmsg": "chat not found"})
        return web.json_response({"errcode": 0, "errmsg": "ok", "chat_info": {
            "chatid": chatid, "name": chatid, "owner": "", "userlist": self.chats[chatid]}})

    async def _appchat_send(self, request: web.Request) -> web.Response:
        bad = self._check_token(request) or await self._failure()
        if bad is not None:
            return bad
        body = await request.json()
        chatid = body.get("chatid", "")
        if self.chats and chatid not in self.chats:
            return web.json_response({"errcode": 86003, "errmsg": "chat not found"})
        if self.enforce_limits:
            members = max(1, len(self.chats.get(chatid, [])) or 1)
            if not self._take("appchat", 20000 * self.limit_scale, 60, members):
                return web.json_response({"errcode": 45009, "errmsg": "api freq out of limit"})
        self.sends.append(Sent("appchat", body, self.time_fn()))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _response_url(self, request: web.Request) -> web.Response:
        bad = await self._failure()
        if bad is not None:
            return bad
        key = request.match_info["key"]
        if any(s.kind == "response_url" and s.headers.get("key") == key for s in self.sends):
            # Like WeCom: a response_url can be used once.
            return web.json_response({"errcode": 93017, "errmsg": "response_url used"})
        body = await request.json()
        self.sends.append(Sent("response_url", body, self.time_fn(), headers={"key": key}))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _gateway(self, request: web.Request) -> web.Response:
        bad = await self._failure()
        if bad is not None:
            return bad
        raw = await request.read()
        import json

        self.sends.append(Sent("gateway", json.loads(raw), self.time_fn(), headers=dict(request.headers), raw=raw))
        return web.json_response({"ok": True})


# -- building callbacks the way WeCom does, with wechatpy's own crypto ---------------------------------


def encrypt_xml_callback(token: str, aes_key: str, corp_id: str, plain_xml: str, timestamp: int | str,
                         nonce: str = "1372623149", agent_id: str = "1000002") -> tuple[dict[str, str], bytes]:
    """(query parameters, body) of a WeCom app callback carrying `plain_xml`."""
    import xmltodict
    from wechatpy.enterprise.crypto import WeChatCrypto

    enc = WeChatCrypto(token, aes_key, corp_id).encrypt_message(plain_xml, nonce, str(timestamp))
    d = xmltodict.parse(enc)["xml"]
    body = (f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName>\n<Encrypt><![CDATA[{d['Encrypt']}]]></Encrypt>\n"
            f"<AgentID><![CDATA[{agent_id}]]></AgentID>\n</xml>")
    return {"msg_signature": d["MsgSignature"], "timestamp": str(timestamp), "nonce": nonce}, body.encode()


def encrypt_json_callback(token: str, aes_key: str, receive_id: str, plain: str, timestamp: int | str,
                          nonce: str = "1372623149") -> tuple[dict[str, str], bytes]:
    """(query parameters, body) of a JSON callback (the AI bot's): body `{"encrypt": ...}`."""
    import json

    import xmltodict
    from wechatpy.enterprise.crypto import WeChatCrypto

    enc = WeChatCrypto(token, aes_key, receive_id).encrypt_message(plain, nonce, str(timestamp))
    d = xmltodict.parse(enc)["xml"]
    return ({"msg_signature": d["MsgSignature"], "timestamp": str(timestamp), "nonce": nonce},
            json.dumps({"encrypt": d["Encrypt"]}).encode())


def text_xml(sender: str, content: str, msg_id: int | str, create_time: int, corp_id: str = "wwfakecorp",
             agent_id: str = "1000002") -> str:
    from xml.sax.saxutils import escape

    return (f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><FromUserName><![CDATA[{sender}]]></FromUserName>"
            f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content>{escape(content)}</Content><MsgId>{msg_id}</MsgId><AgentID>{agent_id}</AgentID></xml>")
