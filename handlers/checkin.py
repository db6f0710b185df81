"""Daily check-ins (报平安 / 报情况): one CheckIn row per (household, person, local date, slot).

- A household counts as reported when any member reports for it; a member may report for a
  neighbour by naming the address.
- People in home quarantine report per slot ("am" before 14:00 local, "pm" after); their answer
  marks the day's Reminder for that slot answered.
- A later report for the same key replaces the earlier value (a correction).
- Safe reports are confirmed privately, once: a repeated identical report is a quiet update, and in
  a group nothing is said (groups must not be flooded).
- Abnormal reports (fever, symptoms) and emergencies open an escalation (handlers.escalation); the
  group hears at most a neutral line, the details go privately.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.config import parse_clock
from bot.dispatch import Also, Context, Router, Tick
from bot.model import Outbound
from handlers import people, texts
from handlers.common import (
    active_quarantine,
    can_confirm_privately,
    chunks,
    compact,
    fmt_temp,
    group_buildings,
    group_message,
    health_summary,
    local_date,
    slot_of,
    to_person,
    to_sender,
)
from handlers.escalation import open_escalation
from storage.ledger import reported_on
from storage.models import CheckIn, Household, Reminder, Resident
from storage.queries import has_run, record_run

log = logging.getLogger(__name__)
router = Router("checkin")
# Last in the dispatcher: private chatter gets a how-to, group chatter nothing.
fallback_router = Router("fallback")


@dataclass
class _Person:
    person: str
    resident_id: int | None
    status: str
    temperature: float | None
    fever: bool
    symptoms: list[str]


SELF_WORDS = ("我", "本人", "自己", "")


def _field(item: object, name: str) -> object:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def _who(item: object) -> str:
    return str(_field(item, "who") or "")[:40]


def _persons(ctx: Context, household: Household) -> list[_Person]:
    p = ctx.parsed
    status = p.checkin or ("abnormal" if (p.fever or p.emergency) else "safe")
    symptoms = list(p.symptoms or [])
    resident = ctx.resident
    own = resident is not None and household.id == resident.household_id
    multi = list(getattr(p, "persons", None) or [])
    # the sender's own name ("3-2-501 周七 发烧38.4") is the sender
    self_words = (*SELF_WORDS, resident.name) if resident is not None else SELF_WORDS
    if len(multi) > 1 or (len(multi) == 1 and _who(multi[0]) not in self_words):
        rows = []
        for item in multi:
            fever = bool(_field(item, "fever"))
            who = _who(item)
            temp = _field(item, "temperature")
            st = "abnormal" if fever or (status == "abnormal" and len(multi) == 1) else "safe"
            if own and who in self_words:
                rows.append(_Person(f"r{resident.id}", resident.id, st, temp, fever, symptoms if st == "abnormal" else []))
            else:
                rows.append(_Person(who, None, st, temp, fever, symptoms if st == "abnormal" else []))
        if status == "abnormal" and not any(r.status == "abnormal" for r in rows):
            # symptoms the parser could not tie to one of them: the household row carries them
            rows.append(_Person("", None, "abnormal", p.temperature, bool(p.fever), symptoms))
        return rows
    self_report = own and getattr(p, "concerns", None) in (None, "self")
    if self_report:
        return [_Person(f"r{resident.id}", resident.id, status, p.temperature, bool(p.fever), symptoms)]
    return [_Person("", None, status, p.temperature, bool(p.fever), symptoms)]


async def _upsert(ctx: Context, household: Household, row: _Person, slot: str) -> tuple[CheckIn, str]:
    """Writes one report; returns it and "created", "changed" or "same"."""
    s = ctx.session
    day = local_date(ctx.settings, ctx.now)
    key = (CheckIn.household_id == household.id, CheckIn.person == row.person, CheckIn.date == day,
           CheckIn.slot == slot)
    existing = await s.scalar(select(CheckIn).where(*key))
    reporter_id = ctx.resident.id if ctx.resident else None
    if existing is None:
        new = CheckIn(household_id=household.id, resident_id=row.resident_id, person=row.person,
                      reporter_id=reporter_id, date=day, slot=slot, status=row.status,
                      temperature=row.temperature, fever=row.fever, symptoms=row.symptoms, text=ctx.text[:2000],
                      inbound_id=ctx.inbound_id, created_at=ctx.now, updated_at=ctx.now)
        try:
            # a savepoint: a concurrent report for the same key wins the insert, we update it instead
            async with s.begin_nested():
                s.add(new)
            return new, "created"
        except IntegrityError:
            existing = await s.scalar(select(CheckIn).where(*key))
            if existing is None:
                raise
    same = (existing.status == row.status and existing.temperature == row.temperature
            and existing.fever == row.fever and sorted(existing.symptoms or []) == sorted(row.symptoms))
    existing.status, existing.temperature, existing.fever = row.status, row.temperature, row.fever
    existing.symptoms, existing.text, existing.reporter_id = row.symptoms, ctx.text[:2000], reporter_id
    existing.inbound_id, existing.updated_at = ctx.inbound_id, ctx.now
    return existing, "same" if same else "changed"


def _escalation_kind(ctx: Context, rows: list[_Person]) -> str | None:
    p = ctx.parsed
    if p.emergency:
        return "emergency"
    if p.fever or any(r.fever for r in rows):
        return "fever"
    if p.checkin == "abnormal" or any(r.status == "abnormal" for r in rows):
        return "symptom"
    return None


def _summary(ctx: Context, rows: list[_Person], household: Household, neighbour: bool) -> str:
    p = ctx.parsed
    if len(rows) > 1 or (rows and rows[0].person and rows[0].resident_id is None):
        parts = [f"{r.person or '家人'} {health_summary(r.temperature, r.symptoms, r.fever)}"
                 if r.status == "abnormal" else f"{r.person} {fmt_temp(r.temperature) or '正常'}"
                 for r in rows]
        text = "；".join(parts)
    else:
        text = health_summary(p.temperature, p.symptoms or [], bool(p.fever))
        if not neighbour and getattr(p, "concerns", None) == "family":
            text = "家人：" + text
    if neighbour and ctx.resident is not None:
        text += f"（{ctx.resident.household.label} {ctx.resident.name} 代报）"
    elif ctx.resident is not None and (len(rows) > 1 or getattr(p, "concerns", None) == "family"
                                       or (rows and rows[0].resident_id is None)):
        text += f"（家属{ctx.resident.name}报告）"
    return text


async def record_report(ctx: Context) -> list[Outbound] | Also:
    """A resident's report: check-in rows, escalation, replies; a request in the same message is
    left to handlers.requests (`Also`)."""
    p = ctx.parsed
    household, problem = await people.message_household(ctx)
    if household is None:
        if not (p.emergency or p.fever or p.checkin == "abnormal") or ctx.resident is None:
            return [to_sender(ctx, problem)]
        # never lose a fever over a mistyped address: the sender's own household gets it
        household = ctx.resident.household
    resident = ctx.resident
    neighbour = resident is None or household.id != resident.household_id
    out: list[Outbound | None] = []
    rows = _persons(ctx, household) if p.checkin is not None else []
    day = local_date(ctx.settings, ctx.now)
    quarantine = None if (neighbour or resident is None) else await active_quarantine(ctx.session, resident.id, day)
    slot = slot_of(ctx.settings, ctx.now) if quarantine is not None else "day"
    results = []
    for row in rows:
        results.append(await _upsert(ctx, household, row, slot))
    if quarantine is not None and resident is not None and rows:
        reminder = await ctx.session.scalar(select(Reminder).where(
            Reminder.resident_id == resident.id, Reminder.date == day, Reminder.slot == slot))
        if reminder is not None and reminder.answered_at is None:
            reminder.answered_at = ctx.now
    log.info("check-in household=%s rows=%s slot=%s", household.id, [r[1] for r in results], slot)

    kind = _escalation_kind(ctx, rows)
    if kind is not None:
        subject_is_sender = (not neighbour and rows and len(rows) == 1 and rows[0].resident_id is not None) \
            or (not rows and not neighbour)
        temps = [r.temperature for r in rows if r.temperature is not None and r.status == "abnormal"]
        temperature = max(temps) if temps else p.temperature
        opened = await open_escalation(
            ctx.session, ctx.settings, ctx.now, kind=kind, household=household,
            resident=resident if subject_is_sender else None, text=ctx.text,
            summary=_summary(ctx, rows, household, neighbour), temperature=temperature,
            inbound_id=ctx.inbound_id, reporter=ctx.resident)
        out += opened.messages
        new = opened.created
        worker = people.describe(await people.grid_workers(ctx.session, household.building.grid_id))
        if kind == "emergency":
            out.append(to_sender(ctx, texts.EMERGENCY_ACK.format(worker=worker)))
        elif new:
            out.append(to_sender(ctx, texts.ABNORMAL_ACK.format(
                summary=health_summary(temperature, p.symptoms or [], bool(p.fever)), worker=worker)))
        else:
            out.append(to_sender(ctx, texts.ABNORMAL_UPDATE.format(
                summary=health_summary(temperature, p.symptoms or [], bool(p.fever)), worker=worker)))
        if ctx.inbound.is_group:
            out.append(group_message(ctx.building, texts.GROUP_ABNORMAL, channel=ctx.inbound.channel,
                                     chat_id=ctx.inbound.chat_id, reply_to=ctx.inbound.reply_to))
    elif rows and can_confirm_privately(ctx):
        changes = {r[1] for r in results}
        temps = [r.temperature for r in rows if r.temperature is not None]
        temp = f"（{fmt_temp(temps[0])}）" if len(temps) == 1 else ""
        what = texts.SLOT_ZH.get(slot, "今日")
        if "changed" in changes and getattr(p, "correction", False):
            out.append(to_sender(ctx, texts.CORRECTED.format(label=household.label, what=what, temp=temp.strip("（）"))))
        elif changes & {"created", "changed"}:
            if neighbour:
                out.append(to_sender(ctx, texts.SAFE_OK_NEIGHBOUR.format(label=household.label, temp=temp)))
            else:
                out.append(to_sender(ctx, texts.SAFE_OK.format(label=household.label, what=what, temp=temp)))
        # "same": a repeated safe report is a quiet update, no second confirmation

    if p.request:
        return Also(compact(out))
    return compact(out)


def is_report(ctx: Context) -> bool:
    p = ctx.parsed
    return bool(ctx.resident is not None and p is not None and (p.checkin is not None or p.emergency))


@router.message(is_report)
async def on_report(ctx: Context) -> list[Outbound] | Also:
    return await record_report(ctx)


# --- unclear and chatter -------------------------------------------------------------------------------


def _guess_temperature(text: str) -> str | None:
    digits = re.sub(r"\D", "", text)
    if len(digits) == 3 and digits[:2] in ("35", "36", "37", "38", "39", "40"):
        return f"{digits[:2]}.{digits[2]}"
    if len(digits) == 2 and digits in ("35", "36", "37", "38", "39", "40"):
        return f"{digits}.0"
    return None


def is_unclear(ctx: Context) -> bool:
    p = ctx.parsed
    return bool(p is not None and getattr(p, "unclear", False) and not p.emergency and p.checkin is None
                and not p.request)


@router.message(is_unclear)
async def on_unclear(ctx: Context) -> list[Outbound]:
    """A lone "37" or "365": ask once instead of guessing; nothing is recorded."""
    guess = _guess_temperature(ctx.text)
    text = texts.UNCLEAR.format(guess=guess) if guess else texts.UNCLEAR_GENERIC
    return [to_sender(ctx, text)]


def _private_chatter(ctx: Context) -> bool:
    return ctx.resident is not None and not ctx.inbound.is_group


@fallback_router.message(_private_chatter)
async def on_private_chatter(ctx: Context) -> list[Outbound]:
    """A resident talking to the bot privately about nothing it handles: a short how-to."""
    return [ctx.reply(texts.RESIDENT_HELP)]


# --- the timers: the morning prompt and the midday nudge ------------------------------------------------


@router.timer("daily-prompt")
async def daily_prompt(tick: Tick) -> AsyncIterator[Sequence[Outbound]]:
    """The morning check-in prompt to every building group."""
    day = local_date(tick.settings, tick.now)
    for part in chunks(await group_buildings(tick.s)):
        yield [Outbound(channel=channel or "wecom", to_chat=chat_id, text=texts.DAILY_PROMPT, kind="prompt",
                        dedup_key=f"prompt:{bid}:{day.isoformat()}") for bid, chat_id, channel in part]


@router.timer("follow-up")
async def household_nudges(tick: Tick) -> AsyncIterator[Sequence[Outbound]]:
    """Once a day, between the progress time and the ledger, one private nudge per unreported household.

    To the household's first bound resident only: one member answers for the family, and a whole
    family pinged at once for one missing line is how people come to mute the bot.
    """
    s, now = tick.settings, tick.now
    day = local_date(s, now)
    start = datetime.combine(day, parse_clock(s.progress_at), tzinfo=s.tz)
    end = datetime.combine(day, parse_clock(s.ledger_at), tzinfo=s.tz)
    period = day.isoformat()
    if not start <= now < end or await has_run(tick.s, "nudge", period):
        return
    ids = (await tick.s.scalars(select(Household.id).where(~reported_on(day)).order_by(Household.id))).all()
    n = 0
    for part in chunks(ids):
        ses = tick.s
        # Re-checked per chunk: a household that reported while earlier chunks were written is spared.
        still = set((await ses.scalars(select(Household.id).where(Household.id.in_(part), ~reported_on(day)))).all())
        first: dict[int, Resident] = {}
        for r in (await ses.scalars(
                select(Resident).where(Resident.household_id.in_(still), Resident.channel_user_id.is_not(None))
                .order_by(Resident.household_id, Resident.id))).all():
            first.setdefault(r.household_id, r)
        out = [m for hid, r in first.items()
               if (m := to_person(r, texts.household_nudge(r.household.label), kind="nudge",
                                  dedup_key=f"nudge:{hid}:{period}",
                                  fallback_channel=r.household.building.channel)) is not None]
        n += len(out)
        yield out
    await record_run(tick.s, "nudge", period, now, {"messages": n})


__all__ = ["router", "fallback_router", "record_report"]
