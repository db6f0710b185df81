"""Staff login for the web page: password check, failed-login limits, and sessions.

Sessions live in the state store (in-process, or Redis when configured, so several processes share
them) under the SHA-256 of a random token, for `SESSION_TTL_S`; changing a password with
`gridbot passwd` ends the sessions opened with the old one. Failed logins are counted per user and
per client address in the state store's rate windows; after `MAX_FAILURES` within `FAILURE_WINDOW_S`
the answer is 429 with Retry-After, before any password is checked.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import secrets
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select

from bot.state import LockTimeout
from bot.web.common import ApiError, AuthedHandler, Handler, Viewer, answers_errors, client_ip, json_response
from handlers.people import scope_of
from storage.models import AuditEvent, Staff
from storage.staffauth import hash_password, verify_password

COOKIE = "gridbot_session"
SESSION_TTL_S = 12 * 3600
SESSION_PREFIX = "dash:session:"
MAX_FAILURES = 5
FAILURE_WINDOW_S = 15 * 60
LOCK_WAIT_S = 10.0
MAX_USER_LEN = 128
MAX_PASSWORD_LEN = 256

_dummy_hash: str | None = None


def _token_key(token: str) -> str:
    # Only the token's hash is stored: a copy of the state store does not hand out live sessions.
    return SESSION_PREFIX + hashlib.sha256(token.encode("utf-8")).hexdigest()


def _fingerprint(hashes: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(hashes)).encode("utf-8")).hexdigest()


def _get_dummy_hash() -> str:
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hash_password(secrets.token_hex(16))
    return _dummy_hash




class Auth:
    def __init__(self, runtime: Any):
        self.rt = runtime

    def now(self) -> datetime:
        return self.rt.clock.now().astimezone(self.rt.settings.tz)

    def authed(self, fn: AuthedHandler) -> Handler:
        @answers_errors
        @functools.wraps(fn)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            token = request.cookies.get(COOKIE)
            if not token or len(token) > 200:
                raise ApiError(401, "请先登录")
            raw = await self.rt.state.get(_token_key(token))
            if raw is None:
                raise ApiError(401, "请先登录")
            try:
                sess = json.loads(raw)
                staff_ids = [int(i) for i in sess["staff"]]
                uid, fp = str(sess["uid"]), str(sess["fp"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ApiError(401, "请先登录") from exc
            async with self.rt.db.session() as s:
                staff = list((await s.scalars(select(Staff).where(Staff.id.in_(staff_ids))
                                              .order_by(Staff.id))).all())
                hashes = [st.password_hash for st in staff if st.password_hash]
                if (len(staff) != len(staff_ids) or len(hashes) != len(staff)
                        or not hmac.compare_digest(_fingerprint(hashes), fp)):
                    # The password was changed or removed, or the staff row is gone: the session ends.
                    await self.rt.state.delete(_token_key(token))
                    raise ApiError(401, "请先登录")
                viewer = Viewer(uid, staff, await scope_of(s, staff))
                return await fn(request, viewer, s)

        return wrapper

    async def audit(self, action: str, staff_id: int | None, user: str, detail: dict[str, Any]) -> None:
        async with self.rt.db.session() as s:
            s.add(AuditEvent(at=self.now(), staff_id=staff_id, action=action, target=user[:100], detail=detail))

    @answers_errors
    async def login(self, request: web.Request) -> web.Response:
        # JSON only: a cross-site form cannot send it without a CORS preflight we never grant.
        if request.content_type != "application/json":
            raise ApiError(415, "请以 JSON 提交")
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "请求格式错误") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "请求格式错误")
        user, password = body.get("user"), body.get("password")
        if (not isinstance(user, str) or not isinstance(password, str) or not user.strip() or not password
                or len(user) > MAX_USER_LEN or len(password) > MAX_PASSWORD_LEN):
            raise ApiError(400, "请填写账号和密码")
        user = user.strip()
        ip = client_ip(request)
        keys = ["dash:login-fail:user:" + hashlib.sha256(user.encode()).hexdigest()[:32],
                "dash:login-fail:ip:" + ip]
        state = self.rt.state
        try:
            # One attempt at a time per user, so that parallel guesses cannot all pass the check
            # below before the first failure is counted.
            async with state.lock("dash:login:" + keys[0], ttl=30.0, wait=LOCK_WAIT_S):
                # Cost 0 under limit-1: refused exactly when MAX_FAILURES are already in the window.
                wait = await state.acquire([(k, MAX_FAILURES - 1, FAILURE_WINDOW_S, 0) for k in keys])
                if wait > 0:
                    retry = max(1, int(wait + 0.999))
                    raise ApiError(429, f"尝试次数过多，请 {(retry + 59) // 60} 分钟后再试",
                                   {"Retry-After": str(retry)})
                async with self.rt.db.session() as s:
                    staff = list((await s.scalars(select(Staff).where(Staff.channel_user_id == user)
                                                  .order_by(Staff.id))).all())
                hashes = sorted({st.password_hash for st in staff if st.password_hash})
                matched: list[Staff] = []
                if not hashes:
                    # Same work as a real check, so that timing does not tell which users exist.
                    await asyncio.to_thread(verify_password, _get_dummy_hash(), password)
                for h in hashes:
                    if await asyncio.to_thread(verify_password, h, password):
                        matched += [st for st in staff if st.password_hash == h]
                if not matched:
                    await state.acquire([(k, 1_000_000, FAILURE_WINDOW_S, 1) for k in keys])
                    reason = "password" if hashes else ("no_password" if staff else "unknown_user")
                    await self.audit("login_failed", staff[0].id if staff else None, user,
                                     {"ip": ip, "reason": reason})
                    raise ApiError(401, "账号或密码错误")
        except LockTimeout as exc:  # too many attempts queued for this user
            raise ApiError(429, "尝试次数过多，请稍后再试", {"Retry-After": "60"}) from exc
        token = secrets.token_urlsafe(32)
        session = {"uid": user, "staff": [st.id for st in matched],
                   "fp": _fingerprint([st.password_hash for st in matched if st.password_hash]),
                   "at": self.now().isoformat(timespec="seconds")}
        await state.set(_token_key(token), json.dumps(session), ttl=SESSION_TTL_S)
        await self.audit("login", matched[0].id, user, {"ip": ip})
        resp = json_response({"ok": True, "name": matched[0].name,
                              "role": "、".join(dict.fromkeys(st.role for st in matched))})
        resp.set_cookie(COOKIE, token, max_age=SESSION_TTL_S, path="/", httponly=True, samesite="Strict",
                        secure=request.secure)
        return resp

    @answers_errors
    async def logout(self, request: web.Request) -> web.Response:
        token = request.cookies.get(COOKIE)
        if token and len(token) <= 200:
            await self.rt.state.delete(_token_key(token))
        resp = json_response({"ok": True})
        resp.del_cookie(COOKIE, path="/")
        return resp
