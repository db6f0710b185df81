"""The seven scheduled jobs, as plain async functions: `await run_job(name, runtime, now)`.

"有事报情况，无事报平安": silence is a signal, and these sweeps are what hear it.

Every job is an idempotent sweep over database rows. Deadlines live in the rows (Reminder.due_at,
Escalation.deadline_at, Quarantine.end_prompted_at), never in the job store, and every message
carries an outbox `dedup_key`; so a job that fires twice, a restart in the middle of a run or two
processes running the same job send each message once. Work is written in chunks of `CHUNK` rows,
one transaction each: a 10,000-person run stays fast, and a crash loses at most the chunk in flight,
which the next run redoes without doubles.

APScheduler only ever stores the job's *name* (`fire("quarantine-reminders")`); the Runtime is read
from the module-level registry here, so nothing live is pickled into the job store.
"""

from __future__ import annotations

import logging
import time as _time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, TypeVar

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings, parse_clock
from bot.model import Outbound
from bot.outbox import enqueue
from handlers.common import to_person
from handlers.escalation import escalate_due, open_escalation
from scheduler import texts
from storage.ledger import compute_ledger, format_grid_ledger
from storage.models import (
    Building,
    CheckIn,
    Grid,
    Household,
    JobRun,
    Quarantine,
    Reminder,
    Resident,
    Staff,
    StaffScope,
)

log = logging.getLogger("gridbot.scheduler")

JOB_NAMES = (
    "daily-prompt",
    "progress",
    "quarantine-reminders",
    "follow-up",
    "escalation-sweep",
    "ledger",
    "quarantine-ends",
)
# Rows written per transaction: large enough to be fast, small enough that a crash costs little.
CHUNK = 1000
# When the grid worker is asked to release people whose quarantine has ended (no setting for it).
QUARANTINE_ENDS_AT = "09:00"
FOLLOW_UP_EVERY = timedelta(minutes=5)
ESCALATION_SWEEP_EVERY = timedelta(minutes=1)
WORKER = "网格员"
GRID_LEADER = "网格长"
DAY = timedelta(days=1)

T = TypeVar("T")

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


# --- helpers -----------------------------------------------------------------------------------------


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _insert(session: AsyncSession, table: Any) -> Any:
    """INSERT with ON CONFLICT support on both SQLite and PostgreSQL."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


async def _grid_staff(session: AsyncSession, grid_ids: Sequence[int] | None,
                      roles: Sequence[str]) -> dict[int, list[Staff]]:
    """Staff of the given roles by grid, in one query for many grids (storage.queries.staff_for_grid
    answers one grid at a time; a district has a thousand)."""
    q = (select(StaffScope.grid_id, Staff).join(Staff, Staff.id == StaffScope.staff_id)
         .where(Staff.role.in_(list(roles)), StaffScope.grid_id.is_not(None)).order_by(Staff.id))
    if grid_ids is not None:
        q = q.where(StaffScope.grid_id.in_(list(grid_ids)))
    out: dict[int, list[Staff]] = defaultdict(list)
    for grid_id, staff in (await session.execute(q)).unique().all():
        if all(s.id != staff.id for s in out[grid_id]):
            out[grid_id].append(staff)
    return out


async def _workers(session: AsyncSession, grid_ids: Sequence[int]) -> dict[int, list[Staff]]:
    """Grid workers by grid; a grid without one falls back to its grid leader, so nothing goes unheard."""
    workers = await _grid_staff(session, grid_ids, (WORKER,))
    missing = [g for g in grid_ids if not workers.get(g)]
    if missing:
        leaders = await _grid_staff(session, missing, (GRID_LEADER,))
        for g in missing:
            workers[g] = leaders.get(g, [])
    return workers


async def record_run(session: AsyncSession, job: str, period: str, now: datetime, detail: dict) -> None:
    await session.execute(_insert(session, JobRun.__table__).values(
        job=job, period=period, ran_at=now, detail=detail).on_conflict_do_nothing(index_elements=["job", "period"]))


async def has_run(session: AsyncSession, job: str, period: str) -> bool:
    return await session.scalar(select(JobRun.id).where(JobRun.job == job, JobRun.period == period)) is not None


def period_of(at: datetime) -> str:
    return at.isoformat(timespec="minutes")


# --- daily-prompt --------------------------------------------------------------------------------------


async def daily_prompt(rt: Any, now: datetime) -> int:
    """The morning check-in prompt to every building group."""
    day = now.astimezone(rt.settings.tz).date()
    async with rt.db.session() as s:
        rows = (await s.execute(select(Building.id, Building.chat_id, Building.channel)
                                .where(Building.chat_id.is_not(None)).order_by(Building.id))).all()
    n = 0
    for part in chunks(rows):
        async with rt.db.session() as s:
            n += len(await enqueue(s, [
                Outbound(channel=channel or "wecom", to_chat=chat_id, text=texts.DAILY_PROMPT, kind="prompt",
                         dedup_key=f"prompt:{bid}:{day.isoformat()}")
                for bid, chat_id, channel in part], now))
    return n


# --- progress ------------------------------------------------------------------------------------------


async def progress(rt: Any, now: datetime) -> int:
    """One line per building group: households reported / due. Counts only."""
    day = now.astimezone(rt.settings.tz).date()
    async with rt.db.session() as s:
        buildings = (await s.execute(select(Building.id, Building.chat_id, Building.channel)
                                     .where(Building.chat_id.is_not(None)).order_by(Building.id))).all()
        due = dict((await s.execute(select(Household.building_id, func.count(Household.id))
                                    .group_by(Household.building_id))).all())
        reported = dict((await s.execute(
            select(Household.building_id, func.count(func.distinct(CheckIn.household_id)))
            .join(CheckIn, CheckIn.household_id == Household.id).where(CheckIn.date == day)
            .group_by(Household.building_id))).all())
    n = 0
    for part in chunks(buildings):
        async with rt.db.session() as s:
            n += len(await enqueue(s, [
                Outbound(channel=channel or "wecom", to_chat=chat_id, kind="progress",
                         text=texts.progress(reported.get(bid, 0), due.get(bid, 0)),
                         dedup_key=f"progress:{bid}:{day.isoformat()}")
                for bid, chat_id, channel in part if due.get(bid)], now))
    return n


# --- quarantine-reminders ----------------------------------------------------------------------------


async def quarantine_reminders(rt: Any, now: datetime) -> int:
    """Every reminder slot of the last day that has come and has no Reminder row yet.

    At the slot's own time this sends the slot. Run again later (a second firing, a restart, the
    catch-up at start-up) it sends what is missing if the slot is less than `grace` old, and records
    older ones as skipped, with a log line: a reminder hours late would confuse more than help.
    """
    s = rt.settings
    tz = s.tz
    today = now.astimezone(tz).date()
    n = 0
    for day in (today - DAY, today):
        for slot, t in s.reminder_slots:
            at = datetime.combine(day, t, tzinfo=tz)
            if now - DAY < at <= now:
                n += await _remind_slot(rt, day, slot, at, now, send=now - at <= s.grace_delta)
    return n


async def _remind_slot(rt: Any, day: date, slot: str, at: datetime, now: datetime, *, send: bool) -> int:
    async with rt.db.session() as s:
        rows = (await s.execute(
            select(Quarantine.resident_id, Quarantine.start, Quarantine.days)
            .where(Quarantine.start <= day, or_(Quarantine.released_at.is_(None), Quarantine.released_at > at))
            .order_by(Quarantine.resident_id))).all()
        active: dict[int, tuple[date, int]] = {}
        for rid, start, days in rows:
            if (day - start).days < days:
                active.setdefault(rid, (start, days))
        if not active:
            return 0
        done = set((await s.scalars(select(Reminder.resident_id)
                                    .where(Reminder.date == day, Reminder.slot == slot))).all())
    todo = [rid for rid in active if rid not in done]
    n = 0
    table = Reminder.__table__
    for part in chunks(todo):
        async with rt.db.session() as s:
            residents = {r.id: r for r in (await s.scalars(select(Resident).where(Resident.id.in_(part)))).all()}
            values = [dict(resident_id=rid, date=day, slot=slot, due_at=at, skipped=not send,
                           sent_at=now if send and residents[rid].channel_user_id else None)
                      for rid in part if rid in residents]
            if not values:
                continue
            # The unique (resident, date, slot) decides who sends: a second process or a second firing
            # inserts nothing and so enqueues nothing.
            # executemany (insertmanyvalues) rather than one VALUES list: one cached statement, a
            # sixth of the time for a chunk of 1,000.
            mine = set((await s.execute(
                _insert(s, table).on_conflict_do_nothing(index_elements=["resident_id", "date", "slot"])
                .returning(table.c.resident_id), values)).scalars().all())
            if not send:
                if mine:
                    log.warning("quarantine reminder %s %s skipped for %d resident(s): %s late, beyond the grace "
                                "of %s; resident ids %s", day, slot, len(mine), now - at, rt.settings.grace,
                                sorted(mine))
                continue
            out = []
            unreachable = []
            for rid in sorted(mine):
                r = residents[rid]
                start, days = active[rid]
                msg = to_person(r, texts.quarantine_reminder(r.name, (day - start).days + 1, days, slot),
                                kind="reminder", dedup_key=f"remind:{rid}:{day.isoformat()}:{slot}",
                                fallback_channel=r.household.building.channel)
                if msg is None:
                    unreachable.append(rid)
                else:
                    out.append(msg)
            if unreachable:
                # No chat id: the follow-up sweep will report them missed, so a person calls them.
                log.warning("quarantine reminder %s %s: no chat id for resident ids %s", day, slot, unreachable)
            n += len(await enqueue(s, out, now))
    return n


# --- follow-up -------------------------------------------------------------------------------------------


async def follow_up(rt: Any, now: datetime) -> int:
    """Unanswered reminders: repeated once, then reported missed; and the midday household nudge."""
    return await _reminder_followups(rt, now) + await _household_nudges(rt, now)


async def _reminder_followups(rt: Any, now: datetime) -> int:
    s = rt.settings
    missed_before = now - s.missed_delta
    async with rt.db.session() as ses:
        ids = (await ses.scalars(
            select(Reminder.id).where(
                Reminder.answered_at.is_(None), Reminder.missed_at.is_(None), Reminder.skipped.is_(False),
                Reminder.due_at <= now - s.followup_delta,
                or_(Reminder.followup_at.is_(None), Reminder.due_at <= missed_before))
            .order_by(Reminder.id))).all()
    n = 0
    for part in chunks(ids):
        async with rt.db.session() as ses:
            rems = (await ses.scalars(select(Reminder).where(Reminder.id.in_(part)).order_by(Reminder.id))).all()
            rids = {r.resident_id for r in rems}
            residents = {r.id: r for r in (await ses.scalars(select(Resident).where(Resident.id.in_(rids)))).all()}
            quarantines: dict[int, list[Quarantine]] = defaultdict(list)
            for q in (await ses.scalars(select(Quarantine).where(Quarantine.resident_id.in_(rids))
                                        .order_by(Quarantine.start))).all():
                quarantines[q.resident_id].append(q)
            answers: dict[tuple[int, date], list[tuple[str, datetime]]] = defaultdict(list)
            for rid, d, slot, updated in (await ses.execute(
                    select(CheckIn.resident_id, CheckIn.date, CheckIn.slot, CheckIn.updated_at)
                    .where(CheckIn.resident_id.in_(rids), CheckIn.date.in_({r.date for r in rems})))).all():
                answers[(rid, d)].append((slot, updated))
            out: list[Outbound] = []
            for rem in rems:
                resident = residents.get(rem.resident_id)
                if resident is None:
                    continue
                # handlers/checkin marks answered_at; a report it did not tie to the slot still counts
                # when it came after the reminder, so nobody is escalated for answering in other words.
                answer = [u for slot, u in answers.get((rem.resident_id, rem.date), [])
                          if slot == rem.slot or u >= rem.due_at]
                if answer:
                    await ses.execute(update(Reminder).where(Reminder.id == rem.id, Reminder.answered_at.is_(None))
                                      .values(answered_at=min(answer)).execution_options(synchronize_session=False))
                    continue
                q = _quarantine_on(quarantines.get(rem.resident_id, []), rem.date)
                day_no, days = (q.day_of(rem.date), q.days) if q else (0, s.quarantine_days)
                if rem.due_at <= missed_before:
                    claimed = (await ses.execute(
                        update(Reminder).where(Reminder.id == rem.id, Reminder.missed_at.is_(None))
                        .values(missed_at=now).execution_options(synchronize_session=False))).rowcount
                    if claimed != 1:
                        continue
                    hh = resident.household
                    summary = texts.missed_summary(rem.slot, _hhmm(rem.due_at, s), _hhmm(rem.followup_at, s))
                    esc, msgs = await open_escalation(
                        ses, s, now, kind="missed", household=hh, resident=resident, text="", summary=summary,
                        dedup_key=f"missed:{rem.resident_id}:{rem.date.isoformat()}:{rem.slot}")
                    await ses.execute(update(Reminder).where(Reminder.id == rem.id)
                                      .values(escalation_id=esc.id).execution_options(synchronize_session=False))
                    log.info("reminder %s of resident %s missed: escalation %s", rem.id, rem.resident_id, esc.id)
                    out += msgs
                else:
                    claimed = (await ses.execute(
                        update(Reminder).where(Reminder.id == rem.id, Reminder.followup_at.is_(None))
                        .values(followup_at=now).execution_options(synchronize_session=False))).rowcount
                    if claimed != 1 or q is None:
                        continue
                    msg = to_person(resident, texts.quarantine_followup(resident.name, day_no, days, rem.slot),
                                    kind="reminder",
                                    dedup_key=f"remind:{rem.resident_id}:{rem.date.isoformat()}:{rem.slot}:again",
                                    fallback_channel=resident.household.building.channel)
                    if msg is not None:
                        out.append(msg)
            n += len(await enqueue(ses, out, now))
    return n


def _hhmm(when: datetime | None, settings: Settings) -> str | None:
    return when.astimezone(settings.tz).strftime("%H:%M") if when else None


def _quarantine_on(qs: Sequence[Quarantine], day: date) -> Quarantine | None:
    for q in reversed(qs):
        if q.start <= day and (day - q.start).days < q.days:
            return q
    return qs[-1] if qs else None


async def _household_nudges(rt: Any, now: datetime) -> int:
    """Once a day, between the progress time and the ledger, one private nudge per unreported household.

    To the household's first bound resident only: one member answers for the family, and a whole
    family pinged at once for one missing line is how people come to mute the bot.
    """
    s = rt.settings
    tz = s.tz
    day = now.astimezone(tz).date()
    start = datetime.combine(day, parse_clock(s.progress_at), tzinfo=tz)
    end = datetime.combine(day, parse_clock(s.ledger_at), tzinfo=tz)
    if not start <= now < end:
        return 0
    period = day.isoformat()
    reported = exists().where(CheckIn.household_id == Household.id, CheckIn.date == day)
    async with rt.db.session() as ses:
        if await has_run(ses, "nudge", period):
            return 0
        ids = (await ses.scalars(select(Household.id).where(~reported).order_by(Household.id))).all()
    n = 0
    for part in chunks(ids):
        async with rt.db.session() as ses:
            # Re-checked per chunk: a household that reported while earlier chunks were written is spared.
            still = set((await ses.scalars(select(Household.id).where(Household.id.in_(part), ~reported))).all())
            first: dict[int, Resident] = {}
            for r in (await ses.scalars(
                    select(Resident).where(Resident.household_id.in_(still), Resident.channel_user_id.is_not(None))
                    .order_by(Resident.household_id, Resident.id))).all():
                first.setdefault(r.household_id, r)
            out = [m for hid, r in first.items()
                   if (m := to_person(r, texts.household_nudge(r.household.label), kind="nudge",
                                      dedup_key=f"nudge:{hid}:{period}",
                                      fallback_channel=r.household.building.channel)) is not None]
            n += len(await enqueue(ses, out, now))
    async with rt.db.session() as ses:
        await record_run(ses, "nudge", period, now, {"messages": n})
    return n


# --- escalation-sweep ----------------------------------------------------------------------------------


async def escalation_sweep(rt: Any, now: datetime) -> int:
    """Moves unacknowledged escalations up the chain (handlers.escalation decides who is next)."""
    async with rt.db.session() as s:
        return len(await enqueue(s, await escalate_due(s, rt.settings, now), now))


# --- ledger ----------------------------------------------------------------------------------------------


async def ledger(rt: Any, now: datetime) -> int:
    """Each grid worker's private daily ledger (台账); a worker of several grids gets one message."""
    s = rt.settings
    day = now.astimezone(s.tz).date()
    async with rt.db.session() as ses:
        data = await compute_ledger(ses, day, s, now=now)
        grid_ids = dict((await ses.execute(select(Grid.name, Grid.id))).all())
        workers = await _workers(ses, list(grid_ids.values()))
    by_staff: dict[int, tuple[Staff, list[str]]] = {}
    for g in data["grids"]:
        gid = grid_ids.get(g["grid"])
        for st in workers.get(gid, []) if gid is not None else []:
            by_staff.setdefault(st.id, (st, []))[1].append(format_grid_ledger(g, day))
    staff = sorted(by_staff.values(), key=lambda v: v[0].id)
    n = 0
    for part in chunks(staff):
        async with rt.db.session() as ses:
            out = [m for st, parts in part
                   if (m := to_person(st, "\n\n".join(parts), kind="ledger",
                                                 dedup_key=f"ledger:{st.id}:{day.isoformat()}"))]
            n += len(await enqueue(ses, out, now))
    return n


# --- quarantine-ends -------------------------------------------------------------------------------------


async def quarantine_ends(rt: Any, now: datetime) -> int:
    """People whose period is over (today >= start + days) are put to their grid worker to release."""
    today = now.astimezone(rt.settings.tz).date()
    async with rt.db.session() as ses:
        rows = (await ses.execute(
            select(Quarantine.id, Quarantine.start, Quarantine.days)
            .where(Quarantine.released_at.is_(None), Quarantine.end_prompted_at.is_(None), Quarantine.start <= today)
            .order_by(Quarantine.id))).all()
    due = [qid for qid, start, days in rows if start + timedelta(days=days) <= today]
    n = 0
    for part in chunks(due):
        async with rt.db.session() as ses:
            qs = (await ses.scalars(select(Quarantine).where(Quarantine.id.in_(part)).order_by(Quarantine.id))).all()
            workers = await _workers(ses, sorted({q.resident.household.building.grid_id for q in qs}))
            out: list[Outbound] = []
            for q in qs:
                claimed = (await ses.execute(
                    update(Quarantine).where(Quarantine.id == q.id, Quarantine.end_prompted_at.is_(None))
                    .values(end_prompted_at=now).execution_options(synchronize_session=False))).rowcount
                if claimed != 1:
                    continue
                hh = q.resident.household
                staff = workers.get(hh.building.grid_id, [])
                if not staff:
                    log.error("quarantine %s ended but grid %s has no worker or leader to release it",
                              q.id, hh.building.grid_id)
                text = texts.quarantine_end(hh.label, q.resident.name, q.days)
                out += [m for st in staff if (m := to_person(st, text, kind="quarantine-end",
                                                                   dedup_key=f"qend:{q.id}:{st.id}"))]
            n += len(await enqueue(ses, out, now))
    return n


# --- the registry of jobs ----------------------------------------------------------------------------------

JOBS: dict[str, Callable[[Any, datetime], Awaitable[int]]] = {
    "daily-prompt": daily_prompt,
    "progress": progress,
    "quarantine-reminders": quarantine_reminders,
    "follow-up": follow_up,
    "escalation-sweep": escalation_sweep,
    "ledger": ledger,
    "quarantine-ends": quarantine_ends,
}
assert tuple(JOBS) == JOB_NAMES


async def run_job(name: str, runtime: Any, now: datetime | None = None) -> int:
    """Runs one job once, as of `now` (the runtime's clock by default); returns messages enqueued."""
    job = JOBS.get(name)
    if job is None:
        raise KeyError(f"unknown job {name!r}; jobs: {', '.join(JOB_NAMES)}")
    now = (now or runtime.clock.now()).astimezone(runtime.settings.tz)
    started = _time.perf_counter()
    n = await job(runtime, now)
    due = last_fire(runtime.settings, name, now)
    if due is not None:
        # The daily jobs leave a mark per fire time, so that the start-up catch-up knows what ran.
        async with runtime.db.session() as s:
            await record_run(s, name, period_of(due), now, {"messages": n})
    log.info("job %s: %d message(s) queued in %.2fs", name, n, _time.perf_counter() - started)
    return n


__all__ = ["JOB_NAMES", "run_job", "fire", "register_runtime", "current_runtime", "daily_times",
           "fire_times", "last_fire"]
