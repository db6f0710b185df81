"""Staff login for the web page: password check, failed-login slowing, and sessions.

Sessions live in the state store (in-process, or Redis when configured, so several processes share
them) under the SHA-256 of a random token. A session ends after `SESSION_IDLE_S` without a request
(every authenticated request renews it) and at the latest `SESSION_MAX_S` after the login;
changing a password with `gridbot passwd` ends the sessions opened with the old one.

Failed logins slow down the *account*, never lock out everyone: after `FREE_FAILURES` failures in a
row an account's next attempt must wait `BASE_DELAY_S * 2**(failures - FREE_FAILURES)` seconds
after the last failure (1 s, 2 s, 4 s, ... at most `MAX_DELAY_S`), answered 429 with Retry-After
before any password is checked; a success clears it, and it is forgotten after `FAILURE_MEMORY_S`
without failures. So another user's wrong guesses never stop a right password, and a guesser
against one account gets a handful of tries an hour. An *address* (the client behind a trusted
proxy, see GRIDBOT_TRUSTED_PROXIES) is refused only at `ADDRESS_MAX_FAILURES` failed or
unfinished attempts in its `ADDRESS_WINDOW_S` window: an office behind one NAT is not blocked by a
colleague's typos.

Both counts are taken *before* the password is checked: an attempt on an account holds that
account's lock and writes its failure first (a success takes it back), and the address counter is
an atomic increment (Redis INCRBY), so parallel logins with different user names from one address
are all counted and the ones past the limit are refused unchecked.
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
from sqlalchemy import select, update

from bot.state import LockTimeout
from bot.web.common import (
    ApiError,
    AuthedHandler,
    Handler,
    Viewer,
    answers_errors,
    client_ip,
    is_https,
    json_response,
)
from handlers.people import scope_of
from storage.models import AuditEvent, Staff
from storage.staffauth import hash_password, needs_rehash, verify_password

COOKIE = "gridbot_session"
SESSION_IDLE_S = 2 * 3600
SESSION_MAX_S = 12 * 3600
SESSION_TTL_S = SESSION_MAX_S  # the cookie's max-age
SESSION_PREFIX = "dash:session:"
FREE_FAILURES = 3
BASE_DELAY_S = 1.0
MAX_DELAY_S = 15 * 60
FAILURE_MEMORY_S = 24 * 3600
ADDRESS_MAX_FAILURES = 50
ADDRESS_WINDOW_S = 15 * 60
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


def account_delay(failures: int) -> float:
    """Seconds an account must wait after its last failure, with `failures` in a row."""
    if failures < FREE_FAILURES:
        return 0.0
    return min(float(MAX_DELAY_S), BASE_DELAY_S * 2 ** min(failures - FREE_FAILURES, 30))


async def add_to_counter(state: Any, key: str, delta: int, ttl: float) -> int:
    """Adds `delta` to an integer under `key` atomically and returns the new value."""
    redis = getattr(state, "redis", None)
    if redis is not None and hasattr(state, "k"):
        async with redis.pipeline(transaction=True) as pipe:
            pipe.incrby(state.k(key), delta)
            pipe.expire(state.k(key), max(1, int(ttl)))
            value, _ = await pipe.execute()
        return int(value)
    # In-process state: its get and set never suspend, so no other task runs between them.
    value = int(await state.get(key) or 0) + delta
    await state.set(key, str(value), ttl=ttl)
    return value


def _retry_after(seconds: float) -> ApiError:
    retry = max(1, int(seconds + 0.999))
    when = f"{retry} 秒" if retry < 60 else f"{(retry + 59) // 60} 分钟"
    return ApiError(429, f"尝试次数过多，请 {when}后再试", {"Retry-After": str(retry)})


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
                started = datetime.fromisoformat(str(sess["at"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise ApiError(401, "请先登录") from exc
            age = (self.now() - started).total_seconds()
            if not 0 <= age < SESSION_MAX_S:
                await self.rt.state.delete(_token_key(token))
                raise ApiError(401, "请先登录")
            # Sliding expiry: each request keeps the session alive for another SESSION_IDLE_S.
            await self.rt.state.set(_token_key(token), raw, ttl=min(SESSION_IDLE_S, SESSION_MAX_S - age))
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
        trusted = self.rt.settings.trusted_networks
        ip = client_ip(request, trusted)
        account = "dash:login-fail:user:" + hashlib.sha256(user.encode()).hexdigest()[:32]
        state = self.rt.state
        now = self.now()
        try:
            # One attempt at a time per account, so that parallel guesses at one account are
            # counted one after the other.
            async with state.lock("dash:login:" + account, ttl=30.0, wait=LOCK_WAIT_S):
                raw = await state.get(account)
                try:
                    rec = json.loads(raw) if raw else {}
                    failures, last = int(rec.get("n", 0)), float(rec.get("last", 0.0))
                except (ValueError, TypeError, AttributeError):
                    failures, last = 0, 0.0
                wait = last + account_delay(failures) - now.timestamp()
                if failures and wait > 0:
                    raise _retry_after(wait)
                # The address's count, before the check: an atomic increment, taken back on success.
                bucket = int(now.timestamp() // ADDRESS_WINDOW_S)
                address = f"dash:login-fail:ip:{ip}:{bucket}"
                if await add_to_counter(state, address, 1, 2 * ADDRESS_WINDOW_S) > ADDRESS_MAX_FAILURES:
                    raise _retry_after((bucket + 1) * ADDRESS_WINDOW_S - now.timestamp())
                # The account's failure, before the check too: a crash mid-check counts as one.
                await state.set(account, json.dumps({"n": failures + 1, "last": now.timestamp()}),
                                ttl=FAILURE_MEMORY_S)
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
                    reason = "password" if hashes else ("no_password" if staff else "unknown_user")
                    await self.audit("login_failed", staff[0].id if staff else None, user,
                                     {"ip": ip, "reason": reason, "failures": failures + 1})
                    raise ApiError(401, "账号或密码错误")
                await state.delete(account)
                await add_to_counter(state, address, -1, 2 * ADDRESS_WINDOW_S)
                await self._rehash(matched, password)
        except LockTimeout as exc:  # too many attempts queued for this user
            raise ApiError(429, "尝试次数过多，请稍后再试", {"Retry-After": "60"}) from exc
        token = secrets.token_urlsafe(32)
        session = {"uid": user, "staff": [st.id for st in matched],
                   "fp": _fingerprint([st.password_hash for st in matched if st.password_hash]),
                   "at": now.isoformat(timespec="seconds")}
        await state.set(_token_key(token), json.dumps(session), ttl=SESSION_IDLE_S)
        await self.audit("login", matched[0].id, user, {"ip": ip})
        resp = json_response({"ok": True, "name": matched[0].name,
                              "role": "、".join(dict.fromkeys(st.role for st in matched))})
        resp.set_cookie(COOKIE, token, max_age=SESSION_TTL_S, path="/", httponly=True, samesite="Strict",
                        secure=is_https(request, trusted))
        return resp

    async def _rehash(self, matched: list[Staff], password: str) -> None:
        """A hash of an older scheme (scrypt) or weaker parameters is replaced after a good login."""
        old = {st.password_hash for st in matched if needs_rehash(st.password_hash)}
        if not old:
            return
        new = await asyncio.to_thread(hash_password, password)
        async with self.rt.db.session() as s:
            await s.execute(update(Staff).where(Staff.id.in_([st.id for st in matched]),
                                                Staff.password_hash.in_(old))
                            .values(password_hash=new).execution_options(synchronize_session=False))
        for st in matched:
            if st.password_hash in old:
                st.password_hash = new

    @answers_errors
    async def logout(self, request: web.Request) -> web.Response:
        token = request.cookies.get(COOKIE)
        if token and len(token) <= 200:
            await self.rt.state.delete(_token_key(token))
        resp = json_response({"ok": True})
        resp.del_cookie(COOKIE, path="/")
        return resp
