"""Rebuildable, expiring state: dedup keys, per-key locks, rate limits and a small key-value store.

`MemoryState` serves one process (the embedded default); `RedisState` lets several processes share
the same dedup keys, locks and rate windows. Nothing here is the truth: losing it costs at most a
duplicate check or a pacing window, never a message (the database holds those).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

log = logging.getLogger(__name__)

# (key, limit, window seconds, cost): "at most `limit` units per `window` seconds under `key`".
Rule = tuple[str, int, float, int]


class LockTimeout(TimeoutError):
    """The lock could not be taken within the wait allowed."""


class State(Protocol):
    async def seen(self, key: str, ttl: float) -> bool: ...
    async def delete(self, key: str) -> None: ...
    def lock(self, key: str, ttl: float = 30.0, wait: float = 30.0) -> Any: ...
    async def acquire(self, rules: Sequence[Rule]) -> float: ...
    async def rate_ok(self, key: str, limit: int, window_s: float) -> bool: ...
    async def get(self, key: str) -> str | None: ...
    async def set(self, key: str, value: str, ttl: float | None = None) -> None: ...
    async def ping(self) -> None: ...
    async def close(self) -> None: ...


class MemoryState:
    """In-process state for a single gridbot process. `time_fn` is injectable for tests."""

    def __init__(self, time_fn: Callable[[], float] = time.monotonic):
        self._now = time_fn
        self._kv: dict[str, tuple[str, float | None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._lock_users: dict[str, int] = {}
        self._windows: dict[str, deque[tuple[float, int]]] = {}
        self._ops = 0

    def _alive(self, key: str) -> str | None:
        item = self._kv.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= self._now():
            del self._kv[key]
            return None
        return value

    def _gc(self) -> None:
        # Dedup keys pile up (one a message); sweep expired ones now and then, not on every call.
        self._ops += 1
        if self._ops % 10_000:
            return
        now = self._now()
        for k in [k for k, (_, exp) in self._kv.items() if exp is not None and exp <= now]:
            del self._kv[k]

    async def seen(self, key: str, ttl: float) -> bool:
        """True if `key` was already marked; otherwise marks it for `ttl` seconds (SET NX)."""
        self._gc()
        if self._alive(key) is not None:
            return True
        self._kv[key] = ("1", self._now() + ttl)
        return False

    async def delete(self, key: str) -> None:
        self._kv.pop(key, None)

    @asynccontextmanager
    async def lock(self, key: str, ttl: float = 30.0, wait: float = 30.0) -> AsyncIterator[None]:
        lk = self._locks.setdefault(key, asyncio.Lock())
        self._lock_users[key] = self._lock_users.get(key, 0) + 1
        try:
            try:
                await asyncio.wait_for(lk.acquire(), wait)
            except TimeoutError as exc:
                raise LockTimeout(key) from exc
            try:
                yield
            finally:
                lk.release()
        finally:
            self._lock_users[key] -= 1
            if not self._lock_users[key]:
                del self._lock_users[key]
                self._locks.pop(key, None)

    async def acquire(self, rules: Sequence[Rule]) -> float:
        """Takes one slot (of `cost` units) under every rule, or none: returns 0.0 when taken,
        else the seconds until the tightest window has room."""
        now = self._now()
        wait = 0.0
        for key, limit, window, cost in rules:
            q = self._windows.setdefault(key, deque())
            while q and q[0][0] <= now - window:
                q.popleft()
            used = sum(c for _, c in q)
            if used + cost > limit:
                # Room appears when enough of the oldest entries leave the window.
                freed, need = 0, used + cost - limit
                for ts, c in q:
                    freed += c
                    if freed >= need:
                        wait = max(wait, ts + window - now)
                        break
                else:
                    wait = max(wait, window)
        if wait > 0:
            return wait
        for key, _limit, _window, cost in rules:
            self._windows[key].append((now, cost))
        return 0.0

    async def rate_ok(self, key: str, limit: int, window_s: float) -> bool:
        return await self.acquire([(key, limit, window_s, 1)]) == 0.0

    async def get(self, key: str) -> str | None:
        return self._alive(key)

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        self._kv[key] = (value, None if ttl is None else self._now() + ttl)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


# Sliding-window log over several keys at once: admit only if every window has room, so that a
# per-recipient slot is never consumed when the global window refuses (and vice versa).
# KEYS: the window keys. ARGV: now, member-id, then (limit, window, cost) per key.
_ACQUIRE_LUA = """
local now = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[3 * i])
  local window = tonumber(ARGV[3 * i + 1])
  local cost = tonumber(ARGV[3 * i + 2])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local used = 0
  local entries = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  for j = 1, #entries, 2 do
    used = used + tonumber(string.match(entries[j], '^(%d+):'))
  end
  if used + cost > limit then
    local need = used + cost - limit
    local freed = 0
    local w = window
    for j = 1, #entries, 2 do
      freed = freed + tonumber(string.match(entries[j], '^(%d+):'))
      if freed >= need then
        w = tonumber(entries[j + 1]) + window - now
        break
      end
    end
    if w > wait then wait = w end
  end
end
if wait > 0 then return tostring(wait) end
for i, key in ipairs(KEYS) do
  local window = tonumber(ARGV[3 * i + 1])
  local cost = ARGV[3 * i + 2]
  redis.call('ZADD', key, now, cost .. ':' .. ARGV[2])
  redis.call('PEXPIRE', key, math.ceil(window * 1000) + 1000)
end
return '0'
"""


class RedisState:
    """State shared by every gridbot process through Redis; every key lives under `prefix`."""

    def __init__(self, url_or_client: Any, prefix: str = "gridbot:",
                 time_fn: Callable[[], float] = time.time):
        import redis.asyncio as aioredis

        if isinstance(url_or_client, str):
            self.redis = aioredis.from_url(url_or_client)
            self._owned = True
        else:
            self.redis = url_or_client
            self._owned = False
        self.prefix = prefix
        self._now = time_fn
        self._acquire = self.redis.register_script(_ACQUIRE_LUA)

    # The callback path's one Redis call may not wait out redis-py's retries (~5 s, past WeCom's
    # deadline) when Redis is down: it gives up after this long.
    seen_timeout_s = 0.5

    def k(self, key: str) -> str:
        return self.prefix + key

    async def seen(self, key: str, ttl: float) -> bool:
        """SET NX; with Redis unreachable, False ("not seen"): the dedup key is an accelerator, and
        the inbox's unique (channel, msg_id) still catches the duplicate, so a callback never
        fails because Redis is down."""
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        try:
            async with asyncio.timeout(self.seen_timeout_s):
                ok = await self.redis.set(self.k(key), b"1", nx=True, px=max(1, int(ttl * 1000)))
        except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError) as exc:
            log.warning("redis unavailable for dedup keys (%s); the database catches duplicates", type(exc).__name__)
            return False
        return not ok

    async def delete(self, key: str) -> None:
        await self.redis.delete(self.k(key))

    @asynccontextmanager
    async def lock(self, key: str, ttl: float = 30.0, wait: float = 30.0) -> AsyncIterator[None]:
        # redis-py's Lock: a token in SET NX PX, released by a Lua compare-and-delete, so an
        # expired holder cannot free someone else's lock.
        from redis.exceptions import LockError

        lk = self.redis.lock(self.k("lock:" + key), timeout=ttl, sleep=0.01)
        token = uuid.uuid4().hex.encode()
        try:
            got = await self._take(lk, token, wait)
        except BaseException:
            # Cancelled while the SET may already have landed: free it (a no-op if it is not ours)
            # rather than leave the next message of this sender waiting out the ttl.
            lk.local.token = token
            with contextlib.suppress(Exception):
                await lk.release()
            raise
        if not got:
            raise LockTimeout(key)
        try:
            yield
        finally:
            # Expired while held (the work ran longer than ttl): nothing left to release. Redis
            # unreachable: the work is done, and the key expires by itself (or went with Redis).
            try:
                await lk.release()
            except LockError:
                pass
            except Exception as exc:  # noqa: BLE001
                log.warning("lock %s not released (%s); it expires in %.0f s", key.split(":", 1)[0],
                            type(exc).__name__, ttl)

    async def _take(self, lk: Any, token: bytes, wait: float) -> bool:
        """SET NX with our own token until taken or `wait` is over.

        A SET that landed but whose reply was lost (Redis restarting: redis-py retries it and the
        retry finds the key taken) is recognised by its token instead of being waited out until
        its ttl; and a Redis that is away for a moment is waited for (within `wait`) rather than
        failing the message, which would cost it a retry's backoff."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            try:
                if await lk.do_acquire(token) or await self.redis.get(lk.name) == token:
                    lk.local.token = token
                    return True
            except Exception:
                if loop.time() + 0.5 > deadline:
                    raise
                await asyncio.sleep(0.5)
                continue
            if loop.time() + lk.sleep > deadline:
                return False
            await asyncio.sleep(lk.sleep)

    async def acquire(self, rules: Sequence[Rule]) -> float:
        if not rules:
            return 0.0
        keys = [self.k("rate:" + r[0]) for r in rules]
        args: list[Any] = [repr(self._now()), uuid.uuid4().hex]
        for _key, limit, window, cost in rules:
            args += [limit, repr(float(window)), cost]
        got = await self._acquire(keys=keys, args=args)
        return float(got)

    async def rate_ok(self, key: str, limit: int, window_s: float) -> bool:
        return await self.acquire([(key, limit, window_s, 1)]) == 0.0

    async def get(self, key: str) -> str | None:
        v = await self.redis.get(self.k(key))
        return None if v is None else v.decode() if isinstance(v, bytes) else str(v)

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        px = None if ttl is None else max(1, int(ttl * 1000))
        await self.redis.set(self.k(key), value, px=px)

    async def ping(self) -> None:
        await self.redis.ping()

    async def close(self) -> None:
        if self._owned:
            await self.redis.aclose()
