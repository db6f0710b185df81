"""The scheduler service: triggers, the persistent job store, catch-up after downtime, restarts,
leadership over the real Redis, and exactly-once reminders under concurrent runs."""

from __future__ import annotations

import asyncio
import logging
from datetime import date, timedelta

from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.base import STATE_PAUSED, STATE_RUNNING
from sqlalchemy import func, select, text

from bot.config import Settings
from scheduler.jobs import run_job
from scheduler.leader import RedisLeadership
from scheduler.service import build_triggers, next_runs, start_scheduler, sync_jobstore_url
from storage.db import Database
from storage.models import (
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
from tests.test_scheduler_jobs import START, at, make_runtime, outbox, seed


def test_triggers_fire_at_the_configured_local_times():
    s = Settings(quarantine_reminders="07:30,13:00,19:00", ledger_at="20:30")
    trig = build_triggers(s)
    now = at(START, 7, 10)
    nxt = {name: t.get_next_fire_time(None, now) for name, t in trig.items()}
    assert nxt["daily-prompt"] == at(START, 8)
    assert nxt["progress"] == at(START, 12)
    assert nxt["quarantine-reminders"] == at(START, 7, 30)
    assert trig["quarantine-reminders"].get_next_fire_time(None, at(START, 7, 31)) == at(START, 13)
    assert trig["quarantine-reminders"].get_next_fire_time(None, at(START, 19, 1)) == at(START + timedelta(1), 7, 30)
    assert nxt["follow-up"] == at(START, 7, 10)
    assert trig["follow-up"].get_next_fire_time(None, at(START, 7, 11)) == at(START, 7, 15)
    assert trig["escalation-sweep"].get_next_fire_time(None, at(START, 7, 10, )) == at(START, 7, 10)
    assert nxt["ledger"] == at(START, 20, 30)
    assert nxt["quarantine-ends"] == at(START, 9)
    # Another zone: the same wall-clock times there.
    utc = dict(next_runs(Settings(timezone="UTC"), at(START, 7, 10)))
    assert utc["daily-prompt"].isoformat() == "2026-02-10T08:00:00+00:00"


def test_sync_jobstore_url():
    assert sync_jobstore_url("sqlite+aiosqlite:////tmp/x/gridbot.db") == "sqlite:////tmp/x/gridbot.db"
    assert sync_jobstore_url("sqlite+aiosqlite:///gridbot.db") == "sqlite:///gridbot.db"
    assert sync_jobstore_url("sqlite+aiosqlite://") is None
    pg = sync_jobstore_url("postgresql+asyncpg://u:p@h/db")
    assert pg is None or pg.startswith("postgresql+psycopg")


async def test_jobs_are_stored_in_the_project_database_with_plain_arguments(sqlite_db):
    await seed(sqlite_db)
    rt = make_runtime(sqlite_db, at(START, 7))
    svc = await start_scheduler(rt, run_catch_up=False)
    try:
        assert svc.is_leader and svc.scheduler.state == STATE_RUNNING
        jobs = {j.id: j for j in svc.scheduler.get_jobs()}
        assert set(jobs) == {"daily-prompt", "progress", "quarantine-reminders", "follow-up",
                             "escalation-sweep", "ledger", "quarantine-ends", "retention"}
        for name, job in jobs.items():
            assert job.func_ref == "scheduler.jobs:fire" and job.args == (name,)
            assert job.misfire_grace_time == 3600 and job.coalesce
        runs = dict(svc.next_runs())
        assert runs["ledger"].utcoffset() == timedelta(hours=8) and runs["ledger"].hour == 21
        async with sqlite_db.engine.connect() as conn:
            stored = (await conn.execute(text("SELECT id FROM apscheduler_jobs"))).scalars().all()
        assert sorted(stored) == sorted(jobs)
    finally:
        await svc.shutdown()
    # A second start replaces the rows under the same ids instead of adding jobs.
    svc = await start_scheduler(make_runtime(sqlite_db, at(START, 7)), run_catch_up=False)
    await svc.shutdown()
    async with sqlite_db.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM apscheduler_jobs"))).scalar() == 8


async def test_catch_up_at_start_and_a_restart_neither_loses_nor_doubles(db, caplog):
    caplog.set_level(logging.INFO, logger="gridbot.scheduler")
    ids = await seed(db)
    # Down over 08:00; back at 08:30: the prompt and the reminder are sent now (within the grace).
    svc = await start_scheduler(make_runtime(db, at(START, 8, 30)), jobstore=MemoryJobStore())
    await asyncio.wait_for(svc.caught_up.wait(), 30)
    await svc.shutdown()
    assert [m.dedup_key for m in await outbox(db, "remind:%")] == [f"remind:{ids['wang']}:{START}:am"]
    assert len(await outbox(db, "prompt:%")) == 1
    # Restarted at 08:45 on a fresh engine: nothing new, nothing doubled.
    fresh = Database(db.url)
    try:
        svc = await start_scheduler(make_runtime(fresh, at(START, 8, 45)), jobstore=MemoryJobStore())
        await asyncio.wait_for(svc.caught_up.wait(), 30)
        await svc.shutdown()
        assert len(await outbox(db, "remind:%")) == 1 and len(await outbox(db, "prompt:%")) == 1
        # Down again from 13:50 to 15:20 and again over the next morning until 09:30.
        for when in (at(START, 15, 20), at(START + timedelta(1), 9, 30)):
            svc = await start_scheduler(make_runtime(fresh, when), jobstore=MemoryJobStore())
            await asyncio.wait_for(svc.caught_up.wait(), 30)
            await svc.shutdown()
    finally:
        await fresh.dispose()
    assert len(await outbox(db, "remind:%")) == 1
    assert len(await outbox(db, "prompt:%")) == 1
    async with db.session() as s:
        rems = (await s.scalars(select(Reminder).order_by(Reminder.due_at))).all()
    assert [(r.date, r.slot, r.skipped) for r in rems] == [
        (START, "am", False), (START, "pm", True), (START + timedelta(1), "am", True)]
    logged = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    # counts, never the ids of a district's residents on one line
    assert any("pm" in m and "1 resident(s)" in m for m in logged)
    assert not any(f"[{ids['wang']}]" in m for m in logged)
    assert any(m.startswith("catch-up: daily-prompt") for m in logged)


async def seed_many(db: Database, n: int, start: date = START) -> None:
    async with db.session() as s:
        grid = Grid(name="大网格", community=Community(name="大社区", street=Street(name="大街道")))
        b = Building(name="9号楼", number="9", grid=grid, chat_id="chat-9", channel="wecom")
        s.add(b)
        await s.flush()
        hh = [Household(building_id=b.id, unit=str(i // 1000 + 1), room=str(i % 1000 + 101)) for i in range(n)]
        s.add_all(hh)
        await s.flush()
        rs = [Resident(household_id=h.id, name=f"居民{i}", channel="wecom", channel_user_id=f"u{i}",
                       category="居家隔离") for i, h in enumerate(hh)]
        s.add_all(rs)
        await s.flush()
        s.add_all([Quarantine(resident_id=r.id, start=start, days=14) for r in rs])


async def test_two_processes_running_the_reminders_at_once_send_each_reminder_once(db):
    await seed_many(db, 1500)  # more than one chunk
    other = Database(db.url)
    try:
        a, b = make_runtime(db, at(START, 8)), make_runtime(other, at(START, 8))
        counts = await asyncio.gather(run_job("quarantine-reminders", a), run_job("quarantine-reminders", b),
                                      run_job("quarantine-reminders", a, at(START, 8, 0, )))
    finally:
        await other.dispose()
    assert sum(counts) == 1500
    async with db.session() as s:
        assert await s.scalar(select(func.count(Reminder.id))) == 1500
        keys = (await s.scalars(select(OutboundMessage.dedup_key))).all()
    assert len(keys) == len(set(keys)) == 1500


async def test_leadership_one_leads_and_the_other_takes_over_when_it_dies(redis_client):
    events: list[str] = []

    def rec(what):
        async def cb():
            events.append(what)
        return cb

    key = redis_client.test_prefix + "leader"
    a = RedisLeadership(redis_client, key, ttl=1.0, renew_every=0.2, on_elected=rec("a+"), on_lost=rec("a-"))
    b = RedisLeadership(redis_client, key, ttl=1.0, renew_every=0.2, on_elected=rec("b+"), on_lost=rec("b-"))
    await a.start()
    await b.start()
    try:
        assert a.is_leader and not b.is_leader and events == ["a+"]
        await asyncio.sleep(0.5)  # several beats: a keeps renewing, b keeps waiting
        assert a.is_leader and not b.is_leader
        # a dies without a word: its beat stops, its lock is left to expire.
        a._task.cancel()
        loop = asyncio.get_running_loop()
        died = loop.time()
        while not b.is_leader and loop.time() - died < 3:
            await asyncio.sleep(0.05)
        assert b.is_leader and loop.time() - died <= 1.0 + 0.2 + 0.3
        # a wakes up: its compare-and-renew fails, it steps down and cannot free b's lock.
        assert await a.tick() is False and not a.is_leader
        assert events == ["a+", "b+", "a-"]
        assert (await redis_client.get(key)).decode() == b.token
    finally:
        await a.stop()
        await b.stop()
    assert await redis_client.get(key) is None  # b handed the lock back on stop


async def test_two_schedulers_one_runs_the_jobs_and_a_switch_sends_nothing_twice(sqlite_db, redis_client):
    ids = await seed(sqlite_db)
    key = redis_client.test_prefix + "sched"
    rt_a, rt_b = make_runtime(sqlite_db, at(START, 8)), make_runtime(sqlite_db, at(START, 8))
    opts = dict(redis=redis_client, lock_key=key, ttl=1.0, renew_every=0.2)
    a = await start_scheduler(rt_a, jobstore=MemoryJobStore(), **opts)
    b = await start_scheduler(rt_b, jobstore=MemoryJobStore(), **opts)
    try:
        await asyncio.wait_for(a.caught_up.wait(), 30)
        assert a.is_leader and not b.is_leader and not b.scheduler.running
        a.leadership._task.cancel()  # a dies
        for _ in range(60):
            if b.is_leader:
                break
            await asyncio.sleep(0.05)
        assert b.is_leader and b.scheduler.state == STATE_RUNNING
        await asyncio.wait_for(b.caught_up.wait(), 30)
        # Around the switch both ran the reminders (a's last run, b's catch-up, and both again).
        await asyncio.gather(run_job("quarantine-reminders", rt_a), run_job("quarantine-reminders", rt_b))
        await a.leadership.tick()
        assert not a.is_leader and a.scheduler.state == STATE_PAUSED
    finally:
        await a.shutdown()
        await b.shutdown()
    assert [m.dedup_key for m in await outbox(sqlite_db, "remind:%")] == [f"remind:{ids['wang']}:{START}:am"]
    assert len(await outbox(sqlite_db, "prompt:%")) == 1
