"""Home quarantine (居家隔离): the twice-daily reminders, the follow-up of silence, and the end.

"有事报情况，无事报平安": silence is a signal, and these timers are what hear it.

Every timer is an idempotent sweep over rows: deadlines live in the rows (Reminder.due_at,
Quarantine.end_prompted_at), claims are conditional UPDATEs or unique inserts, and every message
carries an outbox `dedup_key`; so a timer that fires twice, a restart in the middle of a run or two
processes running the same timer send each message once. Work is yielded in chunks of `CHUNK` rows
(bot/timers.py commits each): a crash loses at most the chunk in flight, which the next run redoes.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.dispatch import Context, NotFound, OutOfScope, Router, Tick, UserError
from bot.model import Outbound
from handlers import people, texts
from handlers.common import (
    CHUNK,
    audit,
    chunks,
    compact,
    find_address_in,
    hhmm,
    local_date,
    private_channel,
    staff_command,
    to_person,
)
from handlers.escalation import open_escalation
from storage.models import CheckIn, Household, Quarantine, Reminder, Resident, Staff
from storage.queries import households_at, insert_for

log = logging.getLogger(__name__)
router = Router("quarantine")
commands = Router("quarantine-commands")
DAY = timedelta(days=1)
_FULL_DATE = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?$")
_SHORT_DATE = re.compile(r"^(\d{1,2})[-/.月](\d{1,2})日?$")


# --- quarantine-reminders ----------------------------------------------------------------------------


@router.timer("quarantine-reminders")
async def quarantine_reminders(tick: Tick) -> AsyncIterator[Sequence[Outbound]]:
    """Every reminder slot of the last day that has come and has no Reminder row yet.

    At the slot's own time this sends the slot. Run again later (a second firing, a restart, the
    catch-up at start-up) it sends what is missing if the slot is less than `grace` old, and records
    older ones as skipped, with a log line: a reminder hours late would confuse more than help.

    With `options` {"slot": "am", "date": date} (`gridbot jobs run quarantine-reminders --slot am
    --date D`) it sends that slot now, grace or not, to everyone in quarantine that day who has not
    had it, including those it was recorded as skipped for: a missed slot sent on purpose.
    """
    s, now = tick.settings, tick.now
    tz = s.tz
    today = now.astimezone(tz).date()
    forced = tick.event.options.get("slot")
    if forced:
        async for part in _remind_on_purpose(tick, forced, tick.event.options.get("date") or today):
            yield part
        return
    due = []
    for day in (today - DAY, today):
        for slot, t in s.reminder_slots:
            at = datetime.combine(day, t, tzinfo=tz)
            if now - DAY < at <= now:
                due.append((day, slot, at))
    sendable = [d for d in due if now - d[2] <= s.grace_delta]
    if not sendable:
        latest = f"{due[-1][1]} {hhmm(s, due[-1][2])} is {_ago(now - due[-1][2])} past its {_ago(s.grace_delta)} grace; " if due else ""
        tick.notes.append(f"no slot due: {latest}next {_next_slot(s, now)}")
    counted = _counts()
    for day, slot, at in due:
        send = now - at <= s.grace_delta
        before = dict(counted)
        async for part in _remind_slot(tick, day, slot, at, send=send, counted=counted):
            yield part
        label = f"{day} {slot} {hhmm(s, at)}"
        if send:
            tick.notes.append(f"{label}: {counted['sent'] - before['sent']} reminders sent"
                              + (f", {counted['unreachable'] - before['unreachable']} residents without a chat id"
                                 if counted["unreachable"] > before["unreachable"] else ""))
        elif counted["skipped"] > before["skipped"]:
            tick.notes.append(f"{label}: {counted['skipped'] - before['skipped']} reminders recorded as skipped "
                              f"({_ago(now - at)} late); send it on purpose with --slot {slot} --date {day}")


def _counts() -> dict[str, int]:
    return {"sent": 0, "skipped": 0, "unreachable": 0, "active": 0}


def _ago(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes >= 60 else f"{minutes} min"


def _next_slot(s: Settings, now: datetime) -> str:
    tz = s.tz
    today = now.astimezone(tz).date()
    for day, word in ((today, "today"), (today + DAY, "tomorrow")):
        for _slot, t in s.reminder_slots:
            if datetime.combine(day, t, tzinfo=tz) > now:
                return f"{t.strftime('%H:%M')} {word}"
    return "-"


async def _remind_on_purpose(tick: Tick, slot: str, day: date) -> AsyncIterator[Sequence[Outbound]]:
    s, now = tick.settings, tick.now
    times = dict(s.reminder_slots)
    if slot not in times:
        tick.notes.append(f"no slot {slot!r}: the slots are {', '.join(times)} (GRIDBOT_QUARANTINE_REMINDERS)")
        return
    at = datetime.combine(day, times[slot], tzinfo=s.tz)
    if at > now:
        tick.notes.append(f"{day} {slot} {hhmm(s, at)} has not come yet: it is sent at its time")
        return
    counted = _counts()
    async for part in _remind_slot(tick, day, slot, at, send=True, on_purpose=True, counted=counted):
        yield part
    tick.notes.append(f"{day} {slot} {hhmm(s, at)} sent on purpose: {counted['sent']} reminders"
                      + (f", {counted['unreachable']} residents without a chat id" if counted["unreachable"] else "")
                      + ("" if counted["sent"] or counted["unreachable"] else
                         " (nobody was in quarantine then)" if not counted["active"] else
                         f" (all {counted['active']} in quarantine then had it already)"))


async def _remind_slot(tick: Tick, day: date, slot: str, at: datetime, *, send: bool, on_purpose: bool = False,
                       counted: dict[str, int] | None = None) -> AsyncIterator[Sequence[Outbound]]:
    now = tick.now
    counted = _counts() if counted is None else counted
    rows = (await tick.s.execute(
        select(Quarantine.resident_id, Quarantine.start, Quarantine.days)
        .where(Quarantine.start <= day, or_(Quarantine.released_at.is_(None), Quarantine.released_at > at))
        .order_by(Quarantine.resident_id))).all()
    active: dict[int, tuple[date, int]] = {}
    for rid, start, days in rows:
        if (day - start).days < days:
            active.setdefault(rid, (start, days))
    counted["active"] = len(active)
    if not active:
        return
    done_q = select(Reminder.resident_id).where(Reminder.date == day, Reminder.slot == slot)
    if on_purpose:
        done_q = done_q.where(Reminder.skipped.is_(False))
    done = set((await tick.s.scalars(done_q)).all())
    todo = [rid for rid in active if rid not in done]
    table = Reminder.__table__
    for part in chunks(todo):
        s = tick.s
        residents = {r.id: r for r in (await s.scalars(select(Resident).where(Resident.id.in_(part)))).all()}
        # Sent on purpose, late: the follow-up counts from now, not from the slot's time.
        due_at = now if on_purpose else at
        values = [dict(resident_id=rid, date=day, slot=slot, due_at=due_at, skipped=not send,
                       sent_at=now if send and residents[rid].channel_user_id else None)
                  for rid in part if rid in residents]
        if not values:
            continue
        # The unique (resident, date, slot) decides who sends: a second process or a second firing
        # inserts nothing and so sends nothing. executemany (insertmanyvalues) rather than one
        # VALUES list: one cached statement, a sixth of the time for a chunk of 1,000.
        mine = set((await s.execute(
            insert_for(s, table).on_conflict_do_nothing(index_elements=["resident_id", "date", "slot"])
            .returning(table.c.resident_id), values)).scalars().all())
        if on_purpose:
            # Those recorded as skipped before: claimed by a conditional UPDATE, so sent once.
            mine |= set((await s.execute(
                update(Reminder).where(Reminder.date == day, Reminder.slot == slot, Reminder.skipped.is_(True),
                                       Reminder.resident_id.in_([v["resident_id"] for v in values]))
                .values(skipped=False, due_at=now, sent_at=now)
                .returning(Reminder.resident_id).execution_options(synchronize_session=False))).scalars().all())
        if not send:
            if mine:
                counted["skipped"] += len(mine)
                log.warning("quarantine reminder %s %s skipped for %d resident(s): %s late, beyond the grace of %s",
                            day, slot, len(mine), now - at, tick.settings.grace)
            yield []
            continue
        out = []
        unreachable = 0
        for rid in sorted(mine):
            r = residents[rid]
            start, days = active[rid]
            msg = to_person(r, texts.quarantine_reminder(r.name, (day - start).days + 1, days, slot),
                            kind="reminder", dedup_key=f"remind:{rid}:{day.isoformat()}:{slot}",
                            fallback_channel=r.household.building.channel)
            if msg is None:
                unreachable += 1
            else:
                out.append(msg)
        counted["sent"] += len(out)
        counted["unreachable"] += unreachable
        if unreachable:
            # No chat id: the follow-up sweep will report them missed, so a person calls them.
            log.warning("quarantine reminder %s %s: %d resident(s) have no chat id", day, slot, unreachable)
        yield out


# --- follow-up ---------------------------------------------------------------------------------------------


@router.timer("follow-up")
async def reminder_followups(tick: Tick) -> AsyncIterator[Sequence[Outbound]]:
    """Unanswered reminders: repeated once after `followup_after`, then reported missed."""
    s, now = tick.settings, tick.now
    missed_before = now - s.missed_delta
    ids = (await tick.s.scalars(
        select(Reminder.id).where(
            Reminder.answered_at.is_(None), Reminder.missed_at.is_(None), Reminder.skipped.is_(False),
            Reminder.due_at <= now - s.followup_delta,
            or_(Reminder.followup_at.is_(None), Reminder.due_at <= missed_before))
        .order_by(Reminder.id))).all()
    for part in chunks(ids):
        yield await _follow_up_chunk(tick, part, missed_before)


async def _follow_up_chunk(tick: Tick, part: Sequence[int], missed_before: datetime) -> list[Outbound]:
    s, now, ses = tick.settings, tick.now, tick.s
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
        # handlers/checkin marks answered_at; a report it did not tie to the slot still counts when
        # it came after the reminder, so nobody is escalated for answering in other words.
        answer = [u for slot, u in answers.get((rem.resident_id, rem.date), []) if slot == rem.slot or u >= rem.due_at]
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
            summary = texts.missed_summary(rem.slot, hhmm(s, rem.due_at), _hhmm_or_none(s, rem.followup_at))
            opened = await open_escalation(
                ses, s, now, kind="missed", household=resident.household, resident=resident, text="",
                summary=summary, dedup_key=f"missed:{rem.resident_id}:{rem.date.isoformat()}:{rem.slot}")
            await ses.execute(update(Reminder).where(Reminder.id == rem.id)
                              .values(escalation_id=opened.escalation.id).execution_options(synchronize_session=False))
            log.info("reminder %s of resident %s missed: escalation %s", rem.id, rem.resident_id,
                     opened.escalation.id)
            out += opened.messages
        else:
            claimed = (await ses.execute(
                update(Reminder).where(Reminder.id == rem.id, Reminder.followup_at.is_(None))
                .values(followup_at=now).execution_options(synchronize_session=False))).rowcount
            if claimed != 1 or q is None:
                continue
            msg = to_person(resident, texts.quarantine_followup(resident.name, day_no, days, rem.slot),
                            kind="reminder", dedup_key=f"remind:{rem.resident_id}:{rem.date.isoformat()}:{rem.slot}:again",
                            fallback_channel=resident.household.building.channel)
            if msg is not None:
                out.append(msg)
    return out


def _hhmm_or_none(settings: Settings, when: datetime | None) -> str | None:
    return hhmm(settings, when) if when else None


def _quarantine_on(qs: Sequence[Quarantine], day: date) -> Quarantine | None:
    for q in reversed(qs):
        if q.start <= day and (day - q.start).days < q.days:
            return q
    return qs[-1] if qs else None


# --- quarantine-ends -------------------------------------------------------------------------------------


@router.timer("quarantine-ends")
async def quarantine_ends(tick: Tick) -> AsyncIterator[Sequence[Outbound]]:
    """People whose period is over (today >= start + days) are put to their grid worker to release."""
    now = tick.now
    today = now.astimezone(tick.settings.tz).date()
    rows = (await tick.s.execute(
        select(Quarantine.id, Quarantine.start, Quarantine.days)
        .where(Quarantine.released_at.is_(None), Quarantine.end_prompted_at.is_(None), Quarantine.start <= today)
        .order_by(Quarantine.id))).all()
    due = [qid for qid, start, days in rows if start + timedelta(days=days) <= today]
    for part in chunks(due, CHUNK):
        ses = tick.s
        qs = (await ses.scalars(select(Quarantine).where(Quarantine.id.in_(part)).order_by(Quarantine.id))).all()
        contacts = await people.grid_contacts(ses, sorted({q.resident.household.building.grid_id for q in qs}))
        out: list[Outbound] = []
        for q in qs:
            claimed = (await ses.execute(
                update(Quarantine).where(Quarantine.id == q.id, Quarantine.end_prompted_at.is_(None))
                .values(end_prompted_at=now).execution_options(synchronize_session=False))).rowcount
            if claimed != 1:
                continue
            hh = q.resident.household
            staff = contacts.get(hh.building.grid_id, [])
            if not staff:
                log.error("quarantine %s ended but grid %s has no worker or leader to release it",
                          q.id, hh.building.grid_id)
            text = texts.quarantine_end(hh.label, q.resident.name, q.days)
            out += [m for st in staff if (m := to_person(st, text, kind="quarantine-end",
                                                          dedup_key=f"qend:{q.id}:{st.id}"))]
        yield out


# --- 隔离 / 解除 (staff) ----------------------------------------------------------------------------


def parse_day(token: str, today: date) -> date | None:
    m = _FULL_DATE.match(token)
    try:
        if m:
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        m = _SHORT_DATE.match(token)
        if m:
            return date(today.year, int(m.group(1)), int(m.group(2)))
    except ValueError:
        return None
    return None


async def household_in_scope(session: AsyncSession, staff: Staff, address_text: str) -> Household:
    """The household an address names, if it is in the staff member's scope (NotFound, OutOfScope)."""
    address = find_address_in(address_text)
    if not address:
        raise UserError("请写上户号，例如：隔离 3-2-501 11-20")
    grid_ids = (await people.scope_of(session, staff)).grid_ids
    found = await households_at(session, address, grid_ids=grid_ids)
    if found:
        return found[0]
    if await households_at(session, address):
        raise OutOfScope(texts.HOUSEHOLD_OUT_OF_SCOPE.format(label=address))
    raise NotFound(texts.HOUSEHOLD_NOT_FOUND.format(address=address))


def _split_args(args: str) -> tuple[str, list[str]]:
    tokens = [t for t in re.split(r"[\s,，、:;；]+", args) if t]
    if not tokens:
        return "", []
    return tokens[0], tokens[1:]


async def _residents(session: AsyncSession, household: Household, name: str | None) -> list[Resident]:
    q = select(Resident).where(Resident.household_id == household.id).order_by(Resident.id)
    rows = list((await session.scalars(q)).unique().all())
    if name:
        rows = [r for r in rows if r.name == name]
        if not rows:
            raise NotFound(texts.NO_SUCH_RESIDENT.format(label=household.label, name=name))
    if not rows:
        raise NotFound(texts.NO_RESIDENTS.format(label=household.label))
    return rows


async def quarantine(session: AsyncSession, settings: Settings, now: datetime, staff: Staff,
                     args: str) -> list[Outbound]:
    """隔离 3-2-501 [王芳] [11-20]: 居家隔离 from that date (default today) for settings.quarantine_days."""
    first, rest = _split_args(args)
    household = await household_in_scope(session, staff, first)
    today = local_date(settings, now)
    start, name = today, None
    for tok in rest:
        d = parse_day(tok, today)
        if d is not None:
            start = d
        elif re.search(r"\d", tok):
            raise UserError(texts.BAD_DATE.format(text=tok))
        else:
            name = tok
    return await start_quarantine(session, settings, now, staff, household, name, start)


async def start_quarantine(session: AsyncSession, settings: Settings, now: datetime, staff: Staff,
                           household: Household, name: str | None, start: date) -> list[Outbound]:
    """Registers the household's residents (or the one named) in 居家隔离 from `start`; the staff
    member's confirmation first, then each resident's notice. The chat command and the web page."""
    days = settings.quarantine_days
    residents = await _residents(session, household, name)
    out: list[Outbound | None] = []
    times = "、".join(t.strftime("%H:%M") for t in settings.reminder_times)
    for r in residents:
        q = await session.scalar(select(Quarantine).where(Quarantine.resident_id == r.id,
                                                          Quarantine.released_at.is_(None)))
        if q is None:
            session.add(Quarantine(resident_id=r.id, start=start, days=days))
        else:
            q.start, q.days = start, days
        if r.category != "重点人员":
            r.category = "居家隔离"
        out.append(to_person(r, texts.QUARANTINE_TO_RESIDENT.format(
            start=f"{start.month}月{start.day}日", days=days, times=times)))
    audit(session, now, staff, "quarantine.start", household.label, start=start.isoformat(),
          days=days, residents=[r.id for r in residents])
    end = start + timedelta(days=days - 1)
    out.insert(0, to_person(staff, texts.QUARANTINE_OK.format(
        label=household.label, names="、".join(r.name for r in residents), start=start.isoformat(), days=days,
        end=end.isoformat())))
    return compact(out)


async def release(session: AsyncSession, settings: Settings, now: datetime, staff: Staff,
                  args: str) -> list[Outbound]:
    """解除 3-2-501 [王芳]: ends the quarantine; category back to 常住 (a key person stays one)."""
    first, rest = _split_args(args)
    household = await household_in_scope(session, staff, first)
    name = next((t for t in rest if not re.search(r"\d", t)), None)
    return await release_household(session, settings, now, staff, household, name)


async def release_household(session: AsyncSession, settings: Settings, now: datetime, staff: Staff,
                            household: Household, name: str | None) -> list[Outbound]:
    """Releases the household's residents in quarantine (or the one named): the staff member's
    confirmation first, then each resident's notice. The chat command and the web page."""
    residents = await _residents(session, household, name)
    released = []
    out: list[Outbound | None] = []
    for r in residents:
        qs = (await session.scalars(select(Quarantine).where(Quarantine.resident_id == r.id,
                                                             Quarantine.released_at.is_(None)))).all()
        if not qs and r.category != "居家隔离":
            continue
        for q in qs:
            q.released_at, q.released_by = now, staff.id
        if r.category == "居家隔离":
            r.category = "常住"
        released.append(r)
        out.append(to_person(r, texts.RELEASE_TO_RESIDENT))
    if not released:
        return compact([to_person(staff, texts.RELEASE_NONE.format(label=household.label))])
    audit(session, now, staff, "quarantine.release", household.label,
          residents=[r.id for r in released])
    out.insert(0, to_person(staff, texts.RELEASE_OK.format(label=household.label,
                                                        names="、".join(r.name for r in released))))
    return compact(out)


def _answer_in_place(ctx: Context, out: list[Outbound]) -> list[Outbound]:
    """In chat, the staff member's own confirmation answers where they wrote (as a reply)."""
    assert ctx.staff is not None
    mine = (private_channel(ctx.staff.channel), ctx.staff.channel_user_id)
    return [ctx.reply(m.text) if (m.channel, m.to_user) == mine and m.kind == "reply" else m for m in out]


@commands.message(staff_command("隔离"))
async def on_quarantine(ctx: Context) -> list[Outbound]:
    assert ctx.staff is not None
    return _answer_in_place(ctx, await quarantine(ctx.session, ctx.settings, ctx.now, ctx.staff, ctx.data["args"]))


@commands.message(staff_command("解除"))
async def on_release(ctx: Context) -> list[Outbound]:
    assert ctx.staff is not None
    return _answer_in_place(ctx, await release(ctx.session, ctx.settings, ctx.now, ctx.staff, ctx.data["args"]))
