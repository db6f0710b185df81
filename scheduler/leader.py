"""Scheduler leadership: when several gridbot processes share Redis, exactly one runs the jobs.

The leader holds a Redis key set with `SET NX PX` and a random token, and renews it every
`renew_every` seconds with a Lua compare-and-renew, so an old leader that wakes up late cannot
extend (or delete) a lock that has passed to someone else. The others try `SET NX` on the same beat
and take over once the key expires: within `ttl + renew_every` of the leader dying (15 s + 5 s by
default, inside the 30 s the operators were promised).

A leader that cannot confirm its lock (renew refused, or Redis unreachable for longer than the TTL)
steps down at once: two leaders would double the reminders, no leader for a few seconds costs
nothing, because the jobs are sweeps that catch up.

These timers run on the event loop's monotonic clock: they measure real seconds between processes,
not the business time that the jobs take from the runtime's Clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("gridbot.scheduler.leader")

LOCK_KEY = "gridbot:scheduler:leader"

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""

Callback = Callable[[], Awaitable[None]]


async def _noop() -> None:
    return None


class Leadership:
    """Base: a process that always leads (no Redis: one process, this one)."""

    def __init__(self, on_elected: Callback = _noop, on_lost: Callback = _noop):
        self.on_elected = on_elected
        self.on_lost = on_lost
        self.is_leader = False

    async def start(self) -> None:
        self.is_leader = True
        await self.on_elected()

    async def stop(self) -> None:
        self.is_leader = False


class RedisLeadership(Leadership):
    """Leadership through one Redis key; `tick()` is one round of the loop (tests drive it directly)."""

    def __init__(self, redis: Any, key: str = LOCK_KEY, *, ttl: float = 15.0, renew_every: float = 5.0,
                 on_elected: Callback = _noop, on_lost: Callback = _noop):
        super().__init__(on_elected, on_lost)
        if renew_every * 2 > ttl:
            raise ValueError("renew at least twice per TTL, or a slow beat loses the lock")
        self.redis = redis
        self.key = key
        self.ttl = ttl
        self.renew_every = renew_every
        self.token = secrets.token_hex(16)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._task: asyncio.Task | None = None
        self._confirmed_at = 0.0

    async def start(self) -> None:
        await self.tick()
        self._task = asyncio.create_task(self._loop(), name="gridbot-scheduler-leadership")

    async def stop(self) -> None:
        """Stops campaigning and hands the lock back, so a standby takes over on its next beat."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.is_leader:
            with contextlib.suppress(Exception):
                await self._release(keys=[self.key], args=[self.token])
            await self._step_down("stopping")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.renew_every)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the loop must outlive one bad beat
                log.exception("scheduler leadership: beat failed")

    async def tick(self) -> bool:
        """One beat: the leader renews, the others try to take the lock. Returns is_leader."""
        loop = asyncio.get_running_loop()
        px = int(self.ttl * 1000)
        try:
            if self.is_leader:
                ok = bool(await self._renew(keys=[self.key], args=[self.token, px]))
                if not ok:
                    await self._step_down("lock lost to another process")
                    return False
            else:
                ok = bool(await self.redis.set(self.key, self.token, nx=True, px=px))
                if not ok:
                    return False
        except Exception as exc:  # noqa: BLE001 - redis-py's ConnectionError is not the builtin one
            # Unsure whether we still hold it: lead on only while the last confirmed lease lasts.
            if self.is_leader and loop.time() - self._confirmed_at >= self.ttl:
                await self._step_down(f"Redis unreachable ({type(exc).__name__})")
            return self.is_leader
        self._confirmed_at = loop.time()
        if not self.is_leader:
            self.is_leader = True
            log.info("scheduler leadership taken (%s)", self.token[:8])
            await self.on_elected()
        return True

    async def _step_down(self, why: str) -> None:
        if not self.is_leader:
            return
        self.is_leader = False
        log.warning("scheduler leadership lost: %s", why)
        await self.on_lost()
