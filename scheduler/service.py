"""The scheduler inside `gridbot serve`: APScheduler 3 with the seven named jobs, and leadership.

    sched = await start_scheduler(runtime)   # at start-up (bot/app.py)
    await sched.shutdown()                   # at clean-up

Job store. APScheduler 3's SQLAlchemyJobStore is synchronous, so it gets a *sync* engine on the
project's own database, table `apscheduler_jobs`: `sqlite+aiosqlite:///x.db` → `sqlite:///x.db`
(the standard library's driver), `postgresql+asyncpg://…` → `postgresql+psycopg://…` (or psycopg2)
when such a driver is installed. None is installed by default, and adding one only for a table of
seven rows did not seem worth a dependency: on PostgreSQL without a sync driver (and for an
in-memory SQLite) the scheduler uses APScheduler's MemoryJobStore and says so in the log. Nothing is
lost by it, because the store holds no truth: jobs are re-added at every start under stable ids
with `replace_existing=True`, their only argument is the job's name, the deadlines live in database
rows (Reminder, Escalation, Quarantine), and every job is an idempotent sweep.

Downtime. APScheduler's `misfire_grace_time` (= GRIDBOT_GRACE) with `coalesce` covers a loop that
was busy; a process that was down is covered by an explicit catch-up when this process becomes the
leader: the reminder slots of the last day with no Reminder row are sent if less than the grace old,
and recorded as skipped (with a log line of resident ids) if older; a daily job (prompt, progress,
ledger) whose last fire time has no JobRun row runs now within the grace, and is logged as skipped
beyond it; quarantine-ends, the follow-up and the escalation sweeps always run once.

Several processes. With Redis (runtime.state is Redis-backed, or GRIDBOT_REDIS_URL is set) only the
holder of the leadership lock runs the scheduler (scheduler/leader.py); a process that loses the lock
pauses its scheduler. Without Redis this process leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
from datetime import datetime
from typing import Any

from apscheduler.jobstores.base import BaseJobStore
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select
from sqlalchemy.engine import make_url

from bot.config import Settings
from scheduler import jobs
from scheduler.leader import LOCK_KEY, Leadership, RedisLeadership
from storage.models import JobRun

log = logging.getLogger("gridbot.scheduler")

JOBSTORE_TABLE = "apscheduler_jobs"


class _QuietAPScheduler(logging.Filter):
    """APScheduler's own INFO lines ("Adding job tentatively", "Added job ... to job store", "Scheduler
    started") repeat what gridbot's "scheduler: leading; next runs ..." says: they are kept only when
    gridbot.scheduler itself logs at DEBUG. Its warnings and errors always pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or log.isEnabledFor(logging.DEBUG)


logging.getLogger("apscheduler.scheduler").addFilter(_QuietAPScheduler())


# --- triggers --------------------------------------------------------------------------------------


def build_triggers(settings: Settings) -> dict[str, BaseTrigger]:
    """One trigger per job name, in the configured timezone; several times of day → an OrTrigger."""
    tz = settings.tz
    daily = jobs.daily_times(settings)
    out: dict[str, BaseTrigger] = {}
    for name in jobs.JOB_NAMES:
        if name == "follow-up":
            out[name] = CronTrigger(minute=f"*/{int(jobs.FOLLOW_UP_EVERY.total_seconds() // 60)}", timezone=tz)
        elif name == "escalation-sweep":
            out[name] = CronTrigger(minute="*", timezone=tz)
        else:
            crons = [CronTrigger(hour=t.hour, minute=t.minute, timezone=tz) for t in daily[name]]
            out[name] = crons[0] if len(crons) == 1 else OrTrigger(crons)
    return out


def next_runs(settings: Settings, now: datetime) -> list[tuple[str, datetime | None]]:
    """(job, next fire time in the configured zone) from the configuration alone."""
    return [(name, _local(t.get_next_fire_time(None, now), settings)) for name, t in build_triggers(settings).items()]


def _local(when: datetime | None, settings: Settings) -> datetime | None:
    return when.astimezone(settings.tz) if when is not None else None


# --- the job store ----------------------------------------------------------------------------------


def sync_jobstore_url(database_url: str) -> str | None:
    """The synchronous twin of the project's database URL, or None when there is no usable one."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:" or url.database.startswith("file::memory:"):
            return None  # a private in-memory database: a sync engine would see another one
        return url.set(drivername="sqlite").render_as_string(hide_password=False)
    if backend == "postgresql":
        for module, driver in (("psycopg", "postgresql+psycopg"), ("psycopg2", "postgresql+psycopg2")):
            if importlib.util.find_spec(module) is not None:
                return url.set(drivername=driver).render_as_string(hide_password=False)
    return None


def make_jobstore(database_url: str) -> BaseJobStore:
    sync_url = sync_jobstore_url(database_url)
    if sync_url is None:
        log.info("scheduler: no synchronous driver for %s; jobs kept in memory (deadlines live in the "
                 "database, so nothing is lost)", make_url(database_url).get_backend_name())
        return MemoryJobStore()
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    options: dict[str, Any] = {"pool_pre_ping": True}
    if sync_url.startswith("sqlite"):
        options["connect_args"] = {"timeout": 30}
    return SQLAlchemyJobStore(url=sync_url, tablename=JOBSTORE_TABLE, engine_options=options)


# --- catch-up --------------------------------------------------------------------------------------


async def catch_up(runtime: Any, now: datetime | None = None) -> int:
    """What the scheduler would have done while no process was leading: see the module docstring.

    Each step stands alone: one that fails is logged and the others still run.
    """
    s = runtime.settings
    now = (now or runtime.clock.now()).astimezone(s.tz)
    n = 0
    for name in jobs.JOB_NAMES:
        try:
            n += await _catch_up_one(runtime, name, now)
        except Exception:  # noqa: BLE001 - the regular runs will sweep again
            log.exception("catch-up: %s failed", name)
    return n


async def _catch_up_one(runtime: Any, name: str, now: datetime) -> int:
    s = runtime.settings
    if name not in ("daily-prompt", "progress", "ledger"):
        # Sweeps that decide for themselves what is due (the reminders apply the grace per slot).
        return await jobs.run_job(name, runtime, now)
    due = jobs.last_fire(s, name, now)
    if due is None:
        return 0
    async with runtime.db.session() as ses:
        if await jobs.has_run(ses, name, jobs.period_of(due)):
            return 0
        # A database this job never ran on (a first start) has missed nothing: no warning for it.
        first = await ses.scalar(select(JobRun.id).where(JobRun.job == name).limit(1)) is None
    if now - due <= s.grace_delta:
        log.info("catch-up: %s was due at %s; running it now", name, due.isoformat())
        return await jobs.run_job(name, runtime, now)
    log.log(logging.INFO if first else logging.WARNING,
            "catch-up: %s due at %s skipped: %s late, beyond the grace of %s%s",
            name, due.isoformat(), now - due, s.grace, " (a new database: nothing was missed)" if first else "")
    async with runtime.db.session() as ses:
        await jobs.record_run(ses, name, jobs.period_of(due), now, {"skipped": True})
    return 0


# --- the service -----------------------------------------------------------------------------------


class SchedulerService:
    """APScheduler with the seven jobs, run only while this process holds the leadership."""

    def __init__(self, runtime: Any, *, redis: Any = None, lock_key: str = LOCK_KEY, ttl: float = 15.0,
                 renew_every: float = 5.0, jobstore: BaseJobStore | None = None, run_catch_up: bool = True):
        self.runtime = runtime
        self.settings: Settings = runtime.settings
        self.run_catch_up = run_catch_up
        self._own_redis = False
        if redis is None:
            redis = getattr(runtime.state, "redis", None)
        if redis is None and self.settings.redis_url:
            import redis.asyncio as aioredis

            redis = aioredis.from_url(self.settings.redis_url)
            self._own_redis = True
        self.redis = redis
        grace = max(1, int(self.settings.grace_delta.total_seconds()))
        self.scheduler = AsyncIOScheduler(
            timezone=self.settings.tz,
            jobstores={"default": jobstore or make_jobstore(self.settings.database_url)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
        )
        for name, trigger in build_triggers(self.settings).items():
            # A textual reference and the job's name only: nothing live goes into the job store.
            self.scheduler.add_job("scheduler.jobs:fire", trigger, args=[name], id=name, name=name,
                                   replace_existing=True)
        self.leadership: Leadership = (
            RedisLeadership(redis, lock_key, ttl=ttl, renew_every=renew_every,
                            on_elected=self._elected, on_lost=self._lost)
            if redis is not None else Leadership(self._elected, self._lost))
        self._catch_up_task: asyncio.Task | None = None
        self.caught_up = asyncio.Event()

    @property
    def is_leader(self) -> bool:
        return self.leadership.is_leader

    async def start(self) -> SchedulerService:
        jobs.register_runtime(self.runtime)
        await self.leadership.start()
        if not self.is_leader:
            log.info("scheduler: standing by; another process leads")
        return self

    async def _elected(self) -> None:
        if not self.scheduler.running:
            self.scheduler.start()
        else:
            self.scheduler.resume()
        log.info("scheduler: leading; next runs %s",
                 {j.id: j.next_run_time.isoformat() for j in self.scheduler.get_jobs() if j.next_run_time})
        if self.run_catch_up:
            # Off the leadership beat: a long catch-up must not delay the renewal of the lock.
            self.caught_up.clear()
            self._catch_up_task = asyncio.create_task(self._catch_up(), name="gridbot-scheduler-catch-up")
        else:
            self.caught_up.set()

    async def _catch_up(self) -> None:
        try:
            n = await catch_up(self.runtime)
            log.info("scheduler: catch-up queued %d message(s)", n)
        except Exception:  # noqa: BLE001 - the regular runs will sweep again
            log.exception("scheduler: catch-up failed")
        finally:
            self.caught_up.set()

    async def _lost(self) -> None:
        if self.scheduler.running:
            self.scheduler.pause()
        await self._cancel_catch_up()

    async def _cancel_catch_up(self) -> None:
        task, self._catch_up_task = self._catch_up_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def next_runs(self) -> list[tuple[str, datetime | None]]:
        if self.scheduler.running:
            return [(j.id, _local(j.next_run_time, self.settings)) for j in self.scheduler.get_jobs()]
        return next_runs(self.settings, self.runtime.clock.now())

    async def shutdown(self) -> None:
        await self.leadership.stop()
        await self._cancel_catch_up()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if jobs._runtime is self.runtime:
            jobs.register_runtime(None)
        if self._own_redis and self.redis is not None:
            await self.redis.aclose()


async def start_scheduler(runtime: Any, **options: Any) -> SchedulerService:
    """Builds and starts the scheduler of this process (bot/app.py calls it at start-up)."""
    return await SchedulerService(runtime, **options).start()
