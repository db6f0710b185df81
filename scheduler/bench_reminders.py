"""`gridbot bench reminders`: quarantine reminders for N people (10,000 by default), end to end.

    gridbot bench reminders [--people N] [--database-url URL] [--scale S] [--no-deliver]

1. Seeds N people in home quarantine into a fresh database (a temporary SQLite file by default).
2. Baseline: the `quarantine-reminders` job alone (Reminder rows + outbox rows, in chunks), then the
   same job again, as when it fires twice (must queue 0).
3. Delivery: the outbox sender (bot/sender.py) delivers through a WeCom API limited to WeCom's
   published rates: 10,000 calls a minute per API for the whole company, 30 messages a minute to one
   member. `--scale S` runs the platform's clock S times faster (its windows are S times shorter),
   so that the limits bite in a short run; at S=1 (real rates) 10,000 distinct members fit in one
   minute's ceiling. The fake answers 45009 when a limit is exceeded; the sender must retry those.
   Reported: total time, 45009s met, messages lost (must be 0) and doubled (must be 0).

The fake WeCom API server of the tests (tests/fakewecom.py) and the WeCom channel adapter
(bot/channels/wecom.py) are used when they are installed; until then a stand-in channel in this
file applies the same limits in process (said so in the output).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import Counter, deque
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bot.clock import Clock
from bot.config import Settings
from bot.runtime import Runtime
from scheduler.jobs import run_job
from storage.db import Database
from storage.models import (
    Base,
    Building,
    Community,
    Grid,
    Household,
    OutboundMessage,
    Quarantine,
    Reminder,
    Resident,
    Street,
)

CORP_CALLS_PER_MIN = 10_000  # 每企业调用单个 API 不可超过 1 万次/分
MEMBER_MSGS_PER_MIN = 30  # 每应用对同一个成员不可超过 30 次/分钟


class StandInWeCom:
    """The WeCom app channel and API in one, in process: the published limits, 45009 beyond them."""

    name = "wecom"

    def __init__(self, scale: float = 1.0):
        self.window = 60.0 / scale
        self.calls: deque[float] = deque()
        self.per_member: dict[str, deque[float]] = {}
        self.delivered: Counter[str] = Counter()
        self.rejected_45009 = 0

    def setup_routes(self, app: Any) -> None:
        return None

    async def pace(self, d: Any) -> float:
        return 0.0  # no client-side pacing: the API's own 45009 is what this bench exercises

    async def send(self, d: Any) -> None:
        from bot.channels.base import SendError

        now = time.monotonic()
        for q in (self.calls, self.per_member.setdefault(d.to_user or "", deque())):
            while q and q[0] <= now - self.window:
                q.popleft()
        member = self.per_member[d.to_user or ""]
        if len(self.calls) >= CORP_CALLS_PER_MIN or len(member) >= MEMBER_MSGS_PER_MIN:
            self.rejected_45009 += 1
            oldest = min(q[0] for q in (self.calls, member) if q)
            raise SendError("45009 api freq out of limit", retry_after=max(0.05, oldest + self.window - now))
        self.calls.append(now)
        member.append(now)
        await asyncio.sleep(0)  # the HTTP round trip, minus the network
        self.delivered[d.to_user or ""] += 1

    async def close(self) -> None:
        return None


async def seed(db: Database, n: int, today: Any) -> None:
    async with db.session() as s:
        grid = Grid(name="压测网格", community=Community(name="压测社区", street=Street(name="压测街道")))
        s.add(grid)
        await s.flush()
        for b0 in range(0, n, 1000):
            b = Building(name=f"{b0 // 1000 + 1}号楼", number=str(b0 // 1000 + 1), grid_id=grid.id,
                         chat_id=f"bench-chat-{b0}", channel="wecom")
            s.add(b)
            await s.flush()
            hh = [Household(building_id=b.id, unit=str(i // 100 + 1), room=str(i % 100 + 101))
                  for i in range(min(1000, n - b0))]
            s.add_all(hh)
            await s.flush()
            rs = [Resident(household_id=h.id, name=f"居民{b0 + i}", channel="wecom",
                           channel_user_id=f"bench-u{b0 + i}", category="居家隔离") for i, h in enumerate(hh)]
            s.add_all(rs)
            await s.flush()
            s.add_all([Quarantine(resident_id=r.id, start=today - timedelta(days=(r.id % 14)), days=14)
                       for r in rs])


async def _bench(args: argparse.Namespace) -> int:
    tmp = None
    url = args.database_url
    if not url:
        tmp = tempfile.TemporaryDirectory(prefix="gridbot-bench-")
        url = f"sqlite+aiosqlite:///{Path(tmp.name) / 'bench.db'}"
    db = Database(url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with db.session() as s:
            if await s.scalar(select(func.count(Reminder.id))):
                print("the database already has reminders; give an empty one", flush=True)
                return 2
        clock = Clock(Settings().tz)
        now = clock.now()
        # The reminder slot is "now", so that the job is on time, as at 08:00.
        settings = Settings(database_url=url, quarantine_reminders=now.strftime("%H:%M"))
        rt = Runtime(settings=settings, db=db, clock=clock)
        t = time.perf_counter()
        await seed(db, args.people, now.date())
        seed_s = time.perf_counter() - t
        print(f"people in quarantine: {args.people:,} ({db.engine.dialect.name}; seeded in {seed_s:.1f} s)")

        t = time.perf_counter()
        queued = await run_job("quarantine-reminders", rt)
        enqueue_s = time.perf_counter() - t
        t = time.perf_counter()
        again = await run_job("quarantine-reminders", rt)
        again_s = time.perf_counter() - t
        print(f"baseline, enqueue only: {queued:,} reminders queued in {enqueue_s:.2f} s "
              f"({queued / enqueue_s:,.0f}/s); the job fired again: {again} queued in {again_s:.2f} s")
        if args.no_deliver:
            return 0 if queued == args.people and again == 0 else 1
        return await _deliver(rt, args, queued, enqueue_s)
    finally:
        await db.dispose()
        if tmp is not None:
            tmp.cleanup()


async def _deliver(rt: Runtime, args: argparse.Namespace, queued: int, enqueue_s: float) -> int:
    try:
        from bot.sender import Sender
    except ModuleNotFoundError as exc:
        print(f"delivery: not measured, {exc.name} is not installed in this version")
        return 0 if queued == args.people else 1
    channel = StandInWeCom(scale=args.scale)
    print(f"delivery: outbox sender → stand-in WeCom API in process (limits {CORP_CALLS_PER_MIN:,}/min per "
          f"company, {MEMBER_MSGS_PER_MIN}/min per member; time scale ×{args.scale:g}); tests/fakewecom.py "
          "and bot/channels/wecom.py are not used by this version")
    rt.channels["wecom"] = channel
    sender = Sender(rt, batch=500, concurrency=64)
    t = time.perf_counter()
    deadline = t + args.timeout
    while time.perf_counter() < deadline:
        if await sender.run_once():
            continue
        async with rt.db.session() as s:
            left = await s.scalar(select(func.count(OutboundMessage.id))
                                  .where(OutboundMessage.status.in_(("pending", "sending"))))
            nxt = await s.scalar(select(func.min(OutboundMessage.next_attempt_at))
                                 .where(OutboundMessage.status == "pending"))
        if not left:
            break
        wait = (nxt - rt.clock.now()).total_seconds() if nxt else 0.05
        await asyncio.sleep(min(max(wait, 0.01), 1.0))
    deliver_s = time.perf_counter() - t
    async with rt.db.session() as s:
        status = dict((await s.execute(select(OutboundMessage.status, func.count(OutboundMessage.id))
                                       .group_by(OutboundMessage.status))).all())
    people = {f"bench-u{i}" for i in range(args.people)}
    lost = len(people - set(channel.delivered))
    doubled = sum(c - 1 for c in channel.delivered.values() if c > 1)
    total = enqueue_s + deliver_s
    print(f"delivered: {sum(channel.delivered.values()):,} in {deliver_s:.1f} s "
          f"({sum(channel.delivered.values()) / deliver_s:,.0f}/s); outbox {status}")
    print(f"total (enqueue + delivery): {total:.1f} s; 45009s met: {channel.rejected_45009:,}; "
          f"lost: {lost}; doubled: {doubled}")
    return 0 if lost == 0 and doubled == 0 and queued == args.people else 1


def run(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="gridbot bench reminders", description=__doc__.split("\n\n")[0])
    p.add_argument("--people", type=int, default=10_000)
    p.add_argument("--database-url", help="an empty database (default: a temporary SQLite file)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="run the platform's rate windows this many times faster (1 = WeCom's real rates)")
    p.add_argument("--timeout", type=float, default=600.0, help="give up delivering after this many seconds")
    p.add_argument("--no-deliver", action="store_true", help="the enqueue baseline only")
    return asyncio.run(_bench(p.parse_args(argv)))
