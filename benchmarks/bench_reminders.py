"""`gridbot bench reminders`: quarantine reminders for N people (10,000 by default), end to end.

    gridbot bench reminders [--people N] [--db sqlite|postgres | --database-url URL] [--scale S|auto]
                            [--busy M] [--no-deliver]

1. Seeds N people in home quarantine into a fresh database: a temporary SQLite file by default;
   `--db postgres` creates (and drops afterwards) a temporary database next to GRIDBOT_TEST_PG's
   (postgresql+asyncpg://postgres@127.0.0.1:5432/test); `--database-url` takes an empty one.
2. Baseline: the `quarantine-reminders` job alone (Reminder rows + outbox rows, in chunks), then the
   same job again, as when it fires twice (must queue 0).
3. Delivery, the real path: the outbox sender (bot/sender.py, its background loop) and the WeCom app
   channel (bot/channels/wecom/: token cache, pacing, 45009 backoff) over HTTP to the fake WeCom API
   server of the tests (tests/fakewecom.py) on 127.0.0.1, in its rate-limited mode at WeCom's
   published rates (message/send: 30 a minute and 1,000 an hour per member; it defines no
   company-wide ceiling for message/send, only appchat's 20,000 recipient-messages a minute).
   The channel paces itself under those limits and under its own app-wide 2,000 a minute, so 10,000
   people take minutes of platform time: `--scale S` runs one clock S times faster for the fake, the
   pacing windows and the runtime clock alike (`auto`, the default: the smallest S that keeps the
   run near a minute).
   A pacing client never exceeds the limits it knows about; `--busy M` makes the first M members
   already have had 30 messages from the app in the current minute (sent, before the run, by another
   process whose pacing this one cannot see), so their reminders meet the per-member ceiling: the
   fake answers 45009 and the sender must retry, never drop.
   Reported from the fake's own records: 45009s answered, lost (outbox rows not sent, or reminders
   the fake never accepted) and doubled (the same (user, text) accepted twice); both must be 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bot.clock import Clock
from bot.config import Settings
from bot.state import MemoryState
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
from tests import fakewecom
from tests.pg import create_temp_database, drop_database

MEMBER_MSGS_PER_MIN = 30  # 每应用对同一个成员不可超过 30 次/分钟 (the fake's enforce_limits)
BUSY_TEXT = "【另一进程】"  # the text of the messages --busy sends before the run
CORP, SECRET, AGENT = "wwbenchcorp", "bench-secret", "1000002"


class ScaledTime:
    """One clock for the platform and the bot: wall time, running `scale` times faster from its start."""

    def __init__(self, scale: float):
        self.scale = scale
        self.w0, self.m0 = time.time(), time.monotonic()

    def __call__(self) -> float:
        return self.w0 + (time.monotonic() - self.m0) * self.scale


class ScaledClock(Clock):
    def __init__(self, tz: Any, t: ScaledTime):
        super().__init__(tz)
        self.t = t

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t(), self.tz)


def auto_scale(people: int, busy: int, app_per_minute: int) -> float:
    """The smallest whole S that brings the platform minutes the pacing needs to about a real minute."""
    minutes = max((people - 1) // app_per_minute, 1 if busy else 0)
    return float(max(1, minutes))


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
    from bot.app import build_runtime
    from bot.channels.wecom.app import WeComChannel

    if args.scale == "auto":
        scale = auto_scale(args.people, args.busy, WeComChannel.app_per_minute)
    else:
        scale = float(args.scale)
        if scale <= 0:
            print("--scale must be positive")
            return 2
    tmp = pg_url = None
    url = args.database_url
    backend = "sqlite"
    if url:
        backend = "sqlite" if url.startswith("sqlite") else "postgres"
    elif args.db == "postgres":
        try:
            url = pg_url = await create_temp_database("gridbot_bench_rem")
        except OSError as exc:
            print(f"PostgreSQL not reachable ({exc})")
            return 2
        backend = "postgres"
    else:
        tmp = tempfile.TemporaryDirectory(prefix="gridbot-bench-")
        url = f"sqlite+aiosqlite:///{Path(tmp.name) / 'bench.db'}"

    t = ScaledTime(scale)
    fake = make_fake(fakewecom, t)
    await fake.start()
    db = Database(url)
    rt = None
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with db.session() as s:
            if await s.scalar(select(func.count(Reminder.id))):
                print("the database already has reminders; give an empty one", flush=True)
                return 2
        base = Settings()
        clock = ScaledClock(base.tz, t)
        now = clock.now()
        # The reminder slot is "now", so that the job is on time, as at 08:00.
        settings = Settings(database_url=url, quarantine_reminders=now.strftime("%H:%M"),
                            wecom_corp_id=CORP, wecom_agent_id=AGENT, wecom_secret=SECRET,
                            wecom_token="bench-token", wecom_aes_key="x" * 43, wecom_api_base=fake.base_url)
        rt = build_runtime(settings, clock, db=db, state=MemoryState(time_fn=t), workers=0)
        p0 = time.perf_counter()
        await seed(db, args.people, now.date())
        seed_s = time.perf_counter() - p0
        print(f"people in quarantine: {args.people:,} ({backend}; seeded in {seed_s:.1f} s)")

        p0 = time.perf_counter()
        queued = await run_job("quarantine-reminders", rt)
        enqueue_s = time.perf_counter() - p0
        p0 = time.perf_counter()
        again = await run_job("quarantine-reminders", rt)
        again_s = time.perf_counter() - p0
        print(f"baseline, enqueue only: {queued:,} reminders queued in {enqueue_s:.2f} s "
              f"({queued / enqueue_s:,.0f}/s); the job fired again: {again} queued in {again_s:.2f} s")
        ok = queued == args.people and again == 0
        if args.no_deliver:
            return 0 if ok else 1
        res = await _deliver(rt, fake, args, scale)
        total = enqueue_s + res["deliver_s"]
        cols = ("people", "backend", "scale", "enqueue s", "delivery s", "total s", "msgs/s", "45009s",
                "lost", "doubled")
        vals = (f"{args.people:,}", backend, f"x{scale:g}", f"{enqueue_s:.2f}", f"{res['deliver_s']:.1f}",
                f"{total:.1f}", f"{res['delivered'] / res['deliver_s']:,.0f}", f"{res['e45009']:,}",
                str(res["lost"]), str(res["doubled"]))
        widths = [max(len(c), len(v)) for c, v in zip(cols, vals, strict=True)]
        print("  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True)))
        print("  ".join(v.rjust(w) for v, w in zip(vals, widths, strict=True)))
        print(f"lost: {res['lost']}; doubled: {res['doubled']}; 45009s: {res['e45009']}")
        ok = ok and res["lost"] == 0 and res["doubled"] == 0 and res["stray"] == 0 and not res["timed_out"]
        return 0 if ok else 1
    finally:
        if rt is not None:
            await rt.sender.stop()
            for ch in rt.channels.values():
                await ch.close()
        await fake.close()
        await db.dispose()
        if tmp is not None:
            tmp.cleanup()
        if pg_url is not None:
            await drop_database(pg_url)


def make_fake(fakewecom: Any, time_fn: ScaledTime) -> Any:
    """The fake in its rate-limited mode at WeCom's rates, on `time_fn`, counting the answers it gives."""

    class CountingFake(fakewecom.FakeWeCom):
        def __init__(self) -> None:
            super().__init__(corp_id=CORP, secret=SECRET, enforce_limits=True, limit_scale=1.0, time_fn=time_fn)
            self.answered: Counter[int] = Counter()  # message/send errcodes

        async def _message_send(self, request: Any) -> Any:
            resp = await super()._message_send(request)
            self.answered[int(json.loads(resp.text).get("errcode", 0))] += 1
            return resp

    return CountingFake()


async def _busy(fake: Any, members: list[str]) -> None:
    """Another process of the same app sends each member 30 messages just before the run."""
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(f"{fake.base_url}/cgi-bin/gettoken", params={"corpid": CORP, "corpsecret": SECRET}) as r:
            tok = (await r.json())["access_token"]
        sem = asyncio.Semaphore(32)

        async def one(u: str, i: int) -> None:
            async with sem:
                body = {"touser": u, "msgtype": "text", "agentid": int(AGENT), "text": {"content": f"{BUSY_TEXT}{i}"}}
                async with http.post(f"{fake.base_url}/cgi-bin/message/send", params={"access_token": tok},
                                     json=body) as r:
                    code = (await r.json())["errcode"]
                    if code:
                        raise RuntimeError(f"--busy: the fake answered {code} to the other process")

        await asyncio.gather(*(one(u, i) for u in members for i in range(MEMBER_MSGS_PER_MIN)))


async def _deliver(rt: Any, fake: Any, args: argparse.Namespace, scale: float) -> dict[str, Any]:
    ch = rt.channels["wecom"]
    print(f"delivery: outbox sender (bot/sender.py) → WeCom app channel (bot/channels/wecom/app.py) → HTTP → fake "
          f"WeCom API (tests/fakewecom.py) at {fake.base_url}, limits enforced at WeCom's rates "
          f"({MEMBER_MSGS_PER_MIN}/min and 1,000/h per member; the channel also paces itself to "
          f"{ch.app_per_minute:,}/min for the app); time scale x{scale:g}: the fake's clock, the pacing "
          f"windows and the runtime clock run {scale:g} times faster than real time")
    busy = [f"bench-u{i}" for i in range(min(args.busy, args.people))]
    if busy:
        await _busy(fake, busy)
        print(f"--busy: {len(busy):,} members already had {MEMBER_MSGS_PER_MIN} messages from the app this minute "
              f"(another process's, {len(busy) * MEMBER_MSGS_PER_MIN:,} sends)")
    before_45009 = fake.answered[45009]
    p0 = time.perf_counter()
    deadline = p0 + args.timeout
    rt.sender.start()
    rt.sender.wake()
    timed_out = True
    while time.perf_counter() < deadline:
        async with rt.db.session() as s:
            left = await s.scalar(select(func.count(OutboundMessage.id))
                                  .where(OutboundMessage.status.in_(("pending", "sending"))))
        if not left:
            timed_out = False
            break
        await asyncio.sleep(0.1)
    deliver_s = time.perf_counter() - p0
    await rt.sender.stop()
    if timed_out:
        print(f"TIMED OUT after {args.timeout:.0f} s with {left:,} outbox rows not yet sent")

    async with rt.db.session() as s:
        rows = (await s.execute(select(OutboundMessage.id, OutboundMessage.to_user, OutboundMessage.text,
                                       OutboundMessage.status).where(OutboundMessage.channel == "wecom"))).all()
    got = Counter((x.body.get("touser"), x.text) for x in fake.sends
                  if x.kind == "message" and not x.text.startswith(BUSY_TEXT))
    expected = {(r.to_user, r.text) for r in rows}
    lost = sum(1 for r in rows if r.status != "sent" or not got[(r.to_user, r.text)])
    doubled = sum(c - 1 for c in got.values() if c > 1)
    stray = sum(c for k, c in got.items() if k not in expected)
    status = Counter(r.status for r in rows)
    print(f"outbox: {dict(status)}; the fake accepted {sum(got.values()):,} reminders "
          f"({len(got):,} distinct (user, text)), answered {fake.answered[45009] - before_45009:,} x 45009; "
          f"{fake.token_requests} token request(s)" + (f"; {stray} sends it never queued" if stray else ""))
    return {"deliver_s": deliver_s, "delivered": sum(got.values()), "e45009": fake.answered[45009] - before_45009,
            "lost": lost, "doubled": doubled, "stray": stray, "timed_out": timed_out}


def run(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="gridbot bench reminders", description=__doc__.split("\n\n")[0])
    p.add_argument("--people", type=int, default=10_000)
    p.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite",
                   help="sqlite: a temporary file; postgres: a temporary database created and dropped on "
                        "GRIDBOT_TEST_PG's server")
    p.add_argument("--database-url", help="an empty database instead (overrides --db)")
    p.add_argument("--scale", default="auto",
                   help="run the platform's (and the bot's) clock this many times faster; 1 = WeCom's real "
                        "rates; auto = enough to finish in about a minute")
    p.add_argument("--busy", type=int, default=0,
                   help="members who already had 30 messages this minute from another process (forces 45009s)")
    p.add_argument("--timeout", type=float, default=600.0, help="give up delivering after this many seconds")
    p.add_argument("--no-deliver", action="store_true", help="the enqueue baseline only")
    return asyncio.run(_bench(p.parse_args(argv)))
