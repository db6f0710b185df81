"""A small async client for the WeCom server API.

Our own aiohttp client (wechatpy's is synchronous and its token refresh loops without limit): the
access token is cached in the state store (shared through Redis when configured) and refreshed 5
minutes before expiry under a lock, so concurrent senders and processes fetch it once.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import aiohttp

from bot.channels.base import SendError

if TYPE_CHECKING:
    from bot.runtime import Runtime

TOKEN_ERRORS = {40014, 42001, 40001}
RATE_ERRORS = {45009, 45033, 45011}
BUSY_ERRORS = {-1}
TOKEN_EARLY_S = 300


class WeComAPI:
    """A small async client for the WeCom server API, with a shared, lock-refreshed access token."""

    def __init__(self, rt: Runtime, corp_id: str, secret: str, agent_id: str | None, api_base: str,
                 timeout_s: float = 10.0):
        self.rt = rt
        self.corp_id = corp_id
        self.secret = secret
        self.agent_id = agent_id
        self.base = api_base.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self.token_key = f"wecom:token:{corp_id}:{agent_id or ''}"

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def token(self, refresh: bool = False) -> str:
        state = self.rt.state
        if not refresh:
            tok = await state.get(self.token_key)
            if tok:
                return tok
        stale = await state.get(self.token_key) if refresh else None
        async with state.lock(self.token_key + ":refresh", ttl=30, wait=30):
            tok = await state.get(self.token_key)
            # Someone else refreshed while we waited for the lock: use theirs.
            if tok and tok != stale:
                return tok
            data = await self._call("GET", "/cgi-bin/gettoken",
                                    params={"corpid": self.corp_id, "corpsecret": self.secret})
            code = data.get("errcode", 0)
            if code:
                raise SendError(f"gettoken:{code}", permanent=code in (40001, 40013, 40091))
            tok = str(data["access_token"])
            ttl = max(60, int(data.get("expires_in", 7200)) - TOKEN_EARLY_S)
            await state.set(self.token_key, tok, ttl=ttl)
            return tok

    async def _call(self, method: str, path: str, params: dict[str, str] | None = None,
                    json: Any = None) -> dict[str, Any]:
        try:
            async with self.http.request(method, self.base + path, params=params, json=json) as resp:
                if resp.status >= 500:
                    raise SendError(f"http_{resp.status}")
                if resp.status >= 400:
                    raise SendError(f"http_{resp.status}", permanent=resp.status in (400, 404))
                return await resp.json(content_type=None)
        except (TimeoutError, asyncio.TimeoutError):
            raise SendError("timeout") from None
        except aiohttp.ClientError as exc:
            raise SendError(f"network:{type(exc).__name__}") from None
        except ValueError:
            raise SendError("bad_json") from None

    async def call(self, method: str, path: str, json: Any = None, params: dict[str, str] | None = None,
                   ) -> dict[str, Any]:
        """Calls the API with the access token; one retry after refreshing a rejected token."""
        for attempt in (1, 2):
            tok = await self.token(refresh=attempt == 2)
            data = await self._call(method, path, params={**(params or {}), "access_token": tok}, json=json)
            code = int(data.get("errcode", 0) or 0)
            if code in TOKEN_ERRORS and attempt == 1:
                continue
            if code == 0:
                return data
            if code in TOKEN_ERRORS:
                raise SendError(f"{code}:token rejected twice")
            if code in RATE_ERRORS:
                raise SendError(f"{code}:too often", retry_after=60.0)
            if code in BUSY_ERRORS:
                raise SendError(f"{code}:busy")
            raise SendError(f"{code}:{str(data.get('errmsg', ''))[:80]}", permanent=True)
        raise AssertionError("unreachable")
