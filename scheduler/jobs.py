"""The seven scheduled jobs: when they are due, and `await run_job(name, runtime, now)`.

A job is a timer event: `run_job` fires `TimerEvent(name, now)` into bot/timers.py, which runs the
handlers that capability modules registered for it (`@router.timer("ledger")` in handlers/ledger.py,
the reminders in handlers/quarantine.py, the sweep in handlers/escalation.py, the morning prompt and
the nudges in handlers/checkin.py). Every one is an idempotent sweep over database rows: deadlines
live in the rows, never in the job store, and every message carries an outbox `dedup_key`.

APScheduler only ever stores the job's *name* (`fire("quarantine-reminders")`); the Runtime is read
from the module-level registry here, so nothing live is pickled into the job store.
"""

from __future__ import annotations

import logging
import time as _time
from collections.abc import Sequence
from datetime import datetime, time, timedelta, tzinfo
from typing import Any

from bot.config import Settings, parse_clock
from bot.model import TimerEvent
from bot.timers import Fired, fire_event
from scheduler.names import JOB_NAMES  # defined there: the command line's help reads them cheaply
from storage.queries import has_run, record_run

log = logging.getLogger("gridbot.scheduler")

# When the grid worker is asked to release people whose quarantine has ended (no setting for it).
QUARANTINE_ENDS_AT = "09:00"
# When the nightly retention sweep runs (handlers/retention.py; no setting for it).
RETENTION_AT = "03:30"
FOLLOW_UP_EVERY = timedelta(minutes=5)
DAY = timedelta(days=1)

# --- the runtime registry ------------------------------------------------------------------------

_runtime: Any = None


def register_runtime(runtime: Any) -> None:
    """Makes `runtime` the one the scheduled jobs run against (set by the scheduler service)."""
    global _runtime
    _runtime = runtime


def current_runtime() -> Any:
    if _runtime is None:
        raise RuntimeError("no gridbot runtime registered for the scheduler")
    return _runtime


async def fire(name: str) -> int:
    """APScheduler's target: plain values in, the live Runtime from the registry."""
    return await run_job(name, current_runtime())


# --- schedules ---------------------------------------------------------------------------------------


def daily_times(settings: Settings) -> dict[str, list[time]]:
    """The jobs that run at fixed local times of day, and those times."""
    return {
        "daily-prompt": [parse_clock(settings.daily_prompt_at)],
        "progress": [parse_clock(settings.progress_at)],
        "quarantine-reminders": [t for _, t in settings.reminder_slots],
        "ledger": [parse_clock(settings.ledger_at)],
        "quarantine-ends": [parse_clock(QUARANTINE_ENDS_AT)],
        "retention": [parse_clock(RETENTION_AT)],
    }


def fire_times(times: Sequence[time], tz: tzinfo, after: datetime, until: datetime) -> list[datetime]:
    """The local fire times of a daily schedule in (after, until], oldest first."""
    out = []
    day = after.astimezone(tz).date()
    last = until.astimezone(tz).date()
    while day <= last:
        for t in sorted(times):
            at = datetime.combine(day, t, tzinfo=tz)
            if after < at <= until:
                out.append(at)
        day += DAY
    return out


def last_fire(settings: Settings, name: str, now: datetime) -> datetime | None:
    """The latest time within the last day at which a daily job was due, or None."""
    times = daily_times(settings).get(name)
    if not times:
        return None
    due = fire_times(times, settings.tz, now - DAY, now)
    return due[-1] if due else None


def period_of(at: datetime) -> str:
    return at.isoformat(timespec="minutes")


async def run_job(name: str, runtime: Any, now: datetime | None = None) -> int:
    """Runs one job once, as of `now` (the runtime's clock by default); returns messages enqueued."""
    return (await run_job_detail(name, runtime, now)).messages


async def run_job_detail(name: str, runtime: Any, now: datetime | None = None,
                         options: dict[str, Any] | None = None) -> Fired:
    """`run_job`, with what the job's handlers said of the run (for `gridbot jobs run`); `options`
    are what the operator asked for by hand (TimerEvent.options: `--slot`, `--date`)."""
    if name not in JOB_NAMES:
        raise KeyError(f"unknown job {name!r}; jobs: {', '.join(JOB_NAMES)}")
    now = (now or runtime.clock.now()).astimezone(runtime.settings.tz)
    started = _time.perf_counter()
    fired = await fire_event(runtime, TimerEvent(name, now, dict(options or {})))
    n = fired.messages
    due = last_fire(runtime.settings, name, now)
    if due is not None:
        # The daily jobs leave a mark per fire time, so that the start-up catch-up knows what ran.
        async with runtime.db.session() as s:
            await record_run(s, name, period_of(due), now, {"messages": n})
    log.info("job %s: %d message(s) queued in %.2fs", name, n, _time.perf_counter() - started)
    return fired


__all__ = ["JOB_NAMES", "run_job", "run_job_detail", "record_run", "has_run", "fire", "register_runtime", "current_runtime", "daily_times",
           "fire_times", "last_fire"]
