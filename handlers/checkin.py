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

import hashlib
import logging
import re
import unicodedata
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from bot.config import parse_clock
from bot.dispatch import Also, Context, OutOfScope, Router, Tick, UserError
from bot.model import Outbound
from handlers import people, texts
from handlers.common import (
    active_quarantine,
    audit,
    chunks,
    compact,
    find_address_in,
    fmt_temp,
    group_buildings,
    group_message,
    health_summary,
    hhmm,
    local_date,
    slot_of,
    staff_command,
    to_person,
    to_sender,
)
from handlers.escalation import open_escalation
from nlp import parse
from nlp.address import find_address
from storage.ledger import reported_on
from storage.models import CheckIn, Escalation, Household, ListLine, Reminder, Resident, ServiceRequest, Staff
from storage.queries import has_run, households_at, insert_for, record_run

log = logging.getLogger(__name__)
router = Router("checkin")
# 接龙 lists: before the single reports (a list is not one household's report), after registration.
lists = Router("checkin-lists")
commands = Router("checkin-commands")
# Open items listed by 待办 before the list is cut.
TODO_CAP = 30
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


@dataclass
class Source:
    """Who a report came from: the household's own member, someone for them, a 接龙 line, a worker."""

    kind: str = "self"  # self | proxy | list | staff
    label: str | None = None  # "楼长刘红", "3-2-601 王芳"
    staff_id: int | None = None


async def record_checkin(ctx: Context, household: Household, row: _Person, slot: str,
                         source: Source | None = None) -> tuple[CheckIn, str]:
    """Keeps one report; returns it and "created", "changed" or "same".

    Every report is a row: a fever then "36.5 正常" leaves both, so the day stays abnormal in the
    ledger while the latest reading shows the recovery. A repeat of the latest reading is the same
    report (its time is refreshed), and an explicit correction ("刚才写错了") replaces the latest.
    """
    source = source or Source()
    s = ctx.session
    day = local_date(ctx.settings, ctx.now)
    latest = await s.scalar(select(CheckIn).where(
        CheckIn.household_id == household.id, CheckIn.person == row.person, CheckIn.date == day,
        CheckIn.slot == slot).order_by(CheckIn.id.desc()).limit(1))
    reporter_id = ctx.resident.id if ctx.resident else None
    if latest is not None and (latest.status, latest.temperature, latest.fever, sorted(latest.symptoms or [])) == (
            row.status, row.temperature, row.fever, sorted(row.symptoms)):
        latest.updated_at = ctx.now
        return latest, "same"
    if latest is not None and getattr(ctx.parsed, "correction", False):
        latest.status, latest.temperature, latest.fever = row.status, row.temperature, row.fever
        latest.symptoms, latest.text, latest.reporter_id = row.symptoms, ctx.text[:2000], reporter_id
        latest.inbound_id, latest.updated_at = ctx.inbound_id, ctx.now
        return latest, "changed"
    new = CheckIn(household_id=household.id, resident_id=row.resident_id, person=row.person,
                  reporter_id=reporter_id, date=day, slot=slot, status=row.status,
                  temperature=row.temperature, fever=row.fever, symptoms=row.symptoms, text=ctx.text[:2000],
                  inbound_id=ctx.inbound_id, source=source.kind, reporter_label=source.label,
                  staff_id=source.staff_id, created_at=ctx.now, updated_at=ctx.now)
    s.add(new)
    await s.flush()
    return new, "created" if latest is None else "changed"


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
        text = health_summary(p.temperature, p.symptoms or [], bool(p.fever), ctx.text if p.emergency else None)
        if not neighbour and getattr(p, "concerns", None) == "family":
            text = "家人：" + text
    if neighbour and ctx.resident is not None:
        text += f"（{ctx.resident.household.label} {ctx.resident.name} 代报）"
    elif ctx.resident is not None and (len(rows) > 1 or getattr(p, "concerns", None) == "family"
                                       or (rows and rows[0].resident_id is None)):
        text += f"（家属{ctx.resident.name}报告）"
    return text


# --- reports about other people (a 楼长, a volunteer, a neighbour) ------------------------------------------

OTHERS = ("neighbour", "other")


def others_in(parsed: Any) -> list[Any]:
    """The people a message reports on who are not the sender or the sender's family, and whom it
    names or places ("3-2-502 王某某 38.2", "隔离户李某 下午37.6")."""
    subs = [sub for sub in getattr(parsed, "subjects", ()) or () if sub.who in OTHERS and (sub.address or sub.name)]
    # an address with nothing said of it, said of someone at that address next: one person
    said = {sub.address for sub in subs if sub.name or sub.temperature is not None or sub.fever or sub.symptoms}
    return [sub for sub in subs if sub.name or sub.temperature is not None or sub.fever or sub.symptoms
            or sub.address not in said]


def about_sender(parsed: Any) -> bool:
    subjects = getattr(parsed, "subjects", ()) or ()
    return not subjects or any(sub.who not in OTHERS for sub in subjects)


def reporter_label(ctx: Context) -> str:
    """How a worker reads who reported: '志愿者刘红', '3-2-601 王芳', or the name they show."""
    if ctx.staff is not None:
        return people.staff_title(ctx.staff)
    if ctx.resident is not None:
        return f"{ctx.resident.household.label} {ctx.resident.name}"
    return (ctx.inbound.sender_name or "未登记成员")[:40]


async def named_household(ctx: Context, address: str | None, name: str | None) -> Household | None:
    """The household a report for someone else is about: its address (the sender's building first,
    then the community), else a roster resident of that name in the group's building."""
    if address:
        # the subject's address is as written ("3号楼2单元502"): the label form first
        household, _problem = await people.message_household(ctx, address=find_address(address) or address)
        if household is not None:
            return household
    building = ctx.building or (ctx.resident.household.building if ctx.resident else None)
    if name and building is not None:
        bare = name.strip("某")  # "王某某" names nobody on a roster
        if len(bare) >= 2:
            found = (await ctx.session.scalars(
                select(Resident).join(Household, Household.id == Resident.household_id)
                .where(Household.building_id == building.id, Resident.name == bare))).unique().all()
            if len(found) == 1:
                return found[0].household
    return None


def _subject_row(sub: Any) -> _Person:
    abnormal = bool(sub.fever or sub.symptoms)
    return _Person((sub.name or "")[:40], None, "abnormal" if abnormal else "safe", sub.temperature, bool(sub.fever),
                   list(sub.symptoms or []))


async def report_subject(ctx: Context, sub: Any, source: Source, *, emergency: bool = False
                         ) -> tuple[Household | None, list[Outbound]]:
    """One person reported for by someone else: that household's check-in (and escalation), or,
    when the place cannot be found, an escalation on the sender's building naming them as written.
    Returns the household found and the staff alerts; what the sender hears is the caller's."""
    household = await named_household(ctx, sub.address, sub.name)
    row = _subject_row(sub)
    abnormal = emergency or row.status == "abnormal"
    if household is not None:
        await record_checkin(ctx, household, row, "day", source)
    if not abnormal:
        return household, []
    kind = "emergency" if emergency else "fever" if row.fever else "symptom"
    written = " ".join(x for x in (sub.address, sub.name) if x) or None
    building = ctx.building or (ctx.resident.household.building if ctx.resident else None)
    opened = await open_escalation(
        ctx.session, ctx.settings, ctx.now, kind=kind, household=household, resident=None,
        building=None if household is not None else building,
        sender=ctx.inbound, text=ctx.text,
        summary=health_summary(row.temperature, row.symptoms, row.fever, ctx.text if emergency else None),
        temperature=row.temperature, inbound_id=ctx.inbound_id, reporter=ctx.resident,
        subject=written if household is None else sub.name, reporter_label=source.label)
    return household, opened.messages


async def record_for_others(ctx: Context, subjects: list[Any]) -> list[Outbound]:
    """A report about other people only: their households, never the sender's own."""
    p = ctx.parsed
    source = Source("proxy", reporter_label(ctx), ctx.staff.id if ctx.staff else None)
    out: list[Outbound] = []
    found: list[Household] = []
    for sub in subjects:
        household, alerts = await report_subject(ctx, sub, source, emergency=bool(p.emergency and len(subjects) == 1))
        out += alerts
        if household is not None:
            found.append(household)
    if out:
        out.append(to_sender(ctx, texts.PROXY_ABNORMAL_ACK))
        if ctx.inbound.is_group and ctx.building is not None:
            out.append(group_message(ctx.building, texts.GROUP_ABNORMAL, channel=ctx.inbound.channel,
                                     chat_id=ctx.inbound.chat_id, reply_to=ctx.inbound.reply_to))
    elif len(subjects) == 1 and found:
        temp = fmt_temp(subjects[0].temperature)
        out.append(to_sender(ctx, texts.SAFE_OK_NEIGHBOUR.format(label=found[0].label, temp=f"（{temp}）" if temp else "")))
    elif found:
        out.append(to_sender(ctx, texts.PROXY_SAFE_OK.format(n=len(found), labels="、".join(h.label for h in found))))
    else:
        out.append(to_sender(ctx, texts.PROXY_NOT_FOUND.format(
            who="、".join(" ".join(x for x in (sub.address, sub.name) if x) for sub in subjects))))
    log.info("report for %d other person(s) by %s", len(subjects), "staff" if ctx.staff else "resident")
    return out


async def record_report(ctx: Context) -> list[Outbound] | Also:
    """A resident's report: check-in rows, escalation, replies; a request in the same message is
    left to handlers.requests (`Also`)."""
    p = ctx.parsed
    others = others_in(p)
    if others and (not about_sender(p) or ctx.resident is None):
        out = await record_for_others(ctx, others)
        return Also(out) if p.request else out
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
    # a claimant nobody has confirmed: counted for the household, marked, never a named person's report
    source = Source("claimed", f"待确认 {ctx.claim.name}") if ctx.claim is not None else None
    for row in rows:
        results.append(await record_checkin(ctx, household, row, slot, source))
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
            inbound_id=ctx.inbound_id, reporter=ctx.resident, sender=ctx.inbound,
            reporter_label=source.label if source else None)
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
    elif rows and ctx.settings.confirm != "none":  # GRIDBOT_CONFIRM (README): "abnormal" confirms corrections only
        changes = {r[1] for r in results}
        temps = [r.temperature for r in rows if r.temperature is not None]
        temp = f"（{fmt_temp(temps[0])}）" if len(temps) == 1 else ""
        what = texts.SLOT_ZH.get(slot, "今日")
        if "changed" in changes and getattr(p, "correction", False):
            out.append(to_sender(ctx, texts.CORRECTED.format(label=household.label, what=what, temp=temp.strip("（）")),
                                 kind="confirmation"))
        elif changes & {"created", "changed"} and ctx.settings.confirm == "all":
            if neighbour:
                out.append(to_sender(ctx, texts.SAFE_OK_NEIGHBOUR.format(label=household.label, temp=temp),
                                     kind="confirmation"))
            else:
                out.append(to_sender(ctx, texts.SAFE_OK.format(label=household.label, what=what, temp=temp),
                                     kind="confirmation"))
        # "same": a repeated safe report is a quiet update, no second confirmation

    if p.request:
        return Also(compact(out))
    return compact(out)


def is_report(ctx: Context) -> bool:
    """A resident's report, or a staff member's report for others in a group (a 楼长 who is a
    volunteer on the roster: "3-2-502 王某某 38.2")."""
    p = ctx.parsed
    if p is None or not (p.checkin is not None or p.emergency):
        return False
    return (ctx.resident is not None or ctx.claim is not None
            or (ctx.staff is not None and ctx.inbound.is_group and bool(others_in(p))))


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


def is_uncertain(ctx: Context) -> bool:
    """The parser could not tell whether a fever or an emergency is reported ("3号楼有个老人发烧了"):
    one question to the sender instead of a silent guess either way."""
    p = ctx.parsed
    return bool(p is not None and getattr(p, "uncertain", False) and p.checkin is None and not p.emergency
                and not getattr(p, "unclear", False)  # a lone "365": the temperature question below
                and (ctx.resident is not None or ctx.staff is not None))


@router.message(is_uncertain)
async def on_uncertain(ctx: Context) -> list[Outbound]:
    day = local_date(ctx.settings, ctx.now).isoformat()
    ask = to_sender(ctx, texts.UNCERTAIN)
    return [Outbound(channel=ask.channel, to_user=ask.to_user, text=ask.text, reply_to=ask.reply_to,
                     dedup_key=f"uncertain:{ctx.inbound.channel}:{ctx.inbound.sender_id}:{day}")]


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


# --- 接龙 (group solitaire lists) and summaries: a line per household -------------------------------------
#
# The usual way a building group reports: someone starts "#接龙 今日体温", each household adds its
# line, and the whole list is re-posted every time. Each line is that household's check-in for the
# day, with the poster as reporter (`source="list"`); a fever on a line is that household's
# escalation. A re-posted list changes only lines that are new or changed: every line seen is kept
# per group and day (`ListLine`, by a digest of its normalised text), so the fever on line 2 alerts
# once however many times the list comes back. A line that names no household of the roster is kept
# too and listed for the grid worker in the evening ledger — never dropped.

_HEAD = re.compile(r"^\s*[#＃]?\s*接龙")
# "例：5-10 36.5 正常", "格式：" — the template line at the top of a list is nobody's report.
_TEMPLATE = re.compile(r"^\s*(?:\d+\s*[.、．)]\s*)?(?:例|例如|如|格式|示例|模板)\s*[:：]")
_NUMBERING = re.compile(r"^\s*\d{1,3}\s*[.、．)）]\s*")
# A list has at least this many lines that each name a household.
MIN_LINES = 2


def is_list(ctx: Context) -> bool:
    """A 接龙 (the gateway's `jielong` kind, or a text starting with 接龙/#接龙), or a summary of
    several lines that each name a household. Staff post lists too (a 楼长 on the roster)."""
    if ctx.parsed is None or not ctx.text or (ctx.resident is None and ctx.staff is None):
        return False
    if ctx.inbound.kind == "jielong" or _HEAD.match(ctx.text):
        return True
    return len(household_lines(ctx.text)) >= MIN_LINES


def household_lines(text: str) -> list[str]:
    """The lines of a list that name a household (the header and the template line do not)."""
    out = []
    for line in text.splitlines():
        if not line.strip() or _TEMPLATE.match(line) or _HEAD.match(line):
            continue
        if find_address_in(unicodedata.normalize("NFKC", line)):
            out.append(line.strip())
    return out


def digest(line: str) -> str:
    """The same line re-posted (renumbered, spaced differently) has the same digest."""
    norm = _NUMBERING.sub("", unicodedata.normalize("NFKC", line))
    norm = re.sub(r"\s+", "", norm)
    return hashlib.sha256(norm.encode()).hexdigest()


@lists.message(is_list)
async def on_list(ctx: Context) -> list[Outbound] | Also:
    lines = household_lines(ctx.text)
    chat = ctx.inbound.chat_id or f"user:{ctx.inbound.sender_id}"
    day = local_date(ctx.settings, ctx.now)
    seen: set[str] = set()
    source = Source("list", reporter_label(ctx), ctx.staff.id if ctx.staff else None)
    out: list[Outbound | None] = []
    new = abnormal = unmatched = 0
    table = ListLine.__table__
    for line in lines:
        key = digest(line)
        if key in seen:
            continue
        seen.add(key)
        # The line is claimed first: two posts of one list handled at once (two workers, two
        # processes) record and alert each line once — the unique (chat, day, digest) decides.
        claimed = (await ctx.session.execute(
            insert_for(ctx.session, table).values(chat_id=chat, date=day, digest=key, line=line[:500],
                                                  inbound_id=ctx.inbound_id, created_at=ctx.now)
            .on_conflict_do_nothing(index_elements=["chat_id", "date", "digest"]).returning(table.c.id))).scalar()
        if claimed is None:
            continue
        new += 1
        household, alerts, bad = await _record_line(ctx, line, source)
        out += alerts
        abnormal += bad
        unmatched += household is None
        if household is not None:
            await ctx.session.execute(update(ListLine).where(ListLine.id == claimed).values(household_id=household.id)
                                      .execution_options(synchronize_session=False))
    log.info("list in %s: %d line(s), %d new, %d abnormal, %d unmatched", "group" if ctx.inbound.is_group else "private",
             len(lines), new, abnormal, unmatched)
    if new:
        out.append(to_sender(ctx, texts.LIST_OK.format(n=new, abnormal=f"，其中异常 {abnormal} 户已转告网格员"
                                                       if abnormal else "",
                                                       unmatched=f"；{unmatched} 行未找到对应住户，已转网格员核对"
                                                       if unmatched else "")))
    return compact(out)


async def _record_line(ctx: Context, line: str, source: Source) -> tuple[Any, list[Outbound], int]:
    """One line: its household's check-in, and the escalation if it reports a fever or symptom."""
    p = parse(line, fever_at=ctx.settings.fever_at)
    address = p.address or find_address_in(unicodedata.normalize("NFKC", line))
    household, _problem = await people.message_household(ctx, address=address)
    if household is None:
        return None, [], 0
    abnormal = bool(p.fever or p.emergency or p.checkin == "abnormal")
    row = _Person("", None, "abnormal" if abnormal else "safe", p.temperature, bool(p.fever), list(p.symptoms or []))
    await record_checkin(ctx, household, row, "day", source)
    if not abnormal:
        return household, [], 0
    kind = "emergency" if p.emergency else "fever" if p.fever else "symptom"
    opened = await open_escalation(
        ctx.session, ctx.settings, ctx.now, kind=kind, household=household, resident=None, text=line,
        summary=health_summary(p.temperature, p.symptoms or [], bool(p.fever), line if p.emergency else None),
        temperature=p.temperature, inbound_id=ctx.inbound_id, reporter=ctx.resident, reporter_label=source.label)
    return household, opened.messages, 1


# --- 代报 (staff) and 待办 -------------------------------------------------------------------------------


async def report_for_household(ctx: Context, staff: Staff, address: str, words: str) -> list[Outbound]:
    """代报 3-2-501 36.5 正常: a worker records a household's report after a phone call or a visit, as
    the household would have (check-in, escalation if abnormal), marked as the worker's."""
    grid_ids = (await people.scope_of(ctx.session, staff)).grid_ids
    found = await households_at(ctx.session, address, grid_ids=grid_ids)
    if not found:
        if await households_at(ctx.session, address):
            raise OutOfScope(texts.HOUSEHOLD_OUT_OF_SCOPE.format(label=address))
        raise UserError(texts.HOUSEHOLD_NOT_FOUND.format(address=address))
    household = found[0]
    p = parse(words, fever_at=ctx.settings.fever_at)
    if p.checkin is None and not p.emergency:
        raise UserError(texts.STAFF_REPORT_USAGE)
    status = "abnormal" if (p.fever or p.emergency or p.checkin == "abnormal") else "safe"
    row = _Person("", None, status, p.temperature, bool(p.fever), list(p.symptoms or []))
    source = Source("staff", people.staff_title(staff), staff.id)
    await record_checkin(ctx, household, row, "day", source)
    audit(ctx.session, ctx.now, staff, "checkin.staff", household.label, status=status)
    out: list[Outbound | None] = []
    if status == "abnormal":
        kind = "emergency" if p.emergency else "fever" if p.fever else "symptom"
        opened = await open_escalation(
            ctx.session, ctx.settings, ctx.now, kind=kind, household=household, resident=None, text=words,
            summary=health_summary(p.temperature, p.symptoms or [], bool(p.fever), words if p.emergency else None),
            temperature=p.temperature, inbound_id=ctx.inbound_id, reporter_label=source.label)
        # the worker who reported it knows already: the rest of the chain is told
        out += [m for m in opened.messages if m.to_user != staff.channel_user_id]
        out.append(ctx.reply(texts.STAFF_REPORT_ABNORMAL.format(label=household.label, code=opened.escalation.code)))
    else:
        out.append(ctx.reply(texts.STAFF_REPORT_OK.format(label=household.label, temp=fmt_temp(p.temperature))))
    return compact(out)


@commands.message(staff_command("代报"))
async def on_staff_report(ctx: Context) -> list[Outbound]:
    address = find_address_in(ctx.data["args"])
    if not address:
        raise UserError(texts.STAFF_REPORT_USAGE)
    words = ctx.data["args"].split(None, 1)[1] if " " in ctx.data["args"] else ""
    return await report_for_household(ctx, ctx.staff, address, words)


@commands.message(staff_command("待办"))
async def on_todo(ctx: Context) -> list[Outbound]:
    """待办: my open escalations and requests, oldest first."""
    scope = await people.scope_of(ctx.session, ctx.staff)
    escs = (await ctx.session.scalars(select(Escalation).where(
        scope.where(Escalation.grid_id), Escalation.status != "closed").order_by(Escalation.opened_at)
        .limit(TODO_CAP))).unique().all()
    reqs = (await ctx.session.scalars(select(ServiceRequest).where(
        scope.where(ServiceRequest.grid_id), ServiceRequest.status.in_(("open", "taken")))
        .order_by(ServiceRequest.created_at).limit(TODO_CAP))).unique().all()
    if not escs and not reqs:
        return [ctx.reply(texts.TODO_NONE)]
    lines = [texts.TODO_HEAD.format(e=len(escs), r=len(reqs))]
    lines += [f"{e.code} {texts.KIND_ZH.get(e.kind, e.kind)} {e.place} {hhmm(ctx.settings, e.opened_at)}"
              f"{'（已确认）' if e.status == 'acked' else ''}" for e in escs]
    lines += [f"{r.code} {texts.REQUEST_ZH.get(r.category, r.category)} {r.household.label}"
              f"{'（已接单）' if r.status == 'taken' else ''}" for r in reqs]
    return [ctx.reply("\n".join(lines))]


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
