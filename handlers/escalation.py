"""Escalations (预警): a fever, a symptom, an emergency or a missed report that a person must act on.

The chain: level 0 is the household's grid worker(s) (网格员); unacknowledged after the first step
(15 min by default) level 1 adds the grid leader (网格长) and the medical worker of the person's
team (else the 医护 of the grid); after the second step (30 min from opening) level 2 adds the
street duty officer (街道值班). An emergency starts at level 2. For key persons (重点人员) and people
in home quarantine (居家隔离) the whole 1+4 team (grid worker, 包保干部, 包保民警, 包保医护) hears
at level 0 already.

One escalation per (person — or household when no person is known —, kind, local day): a second
report the same day updates the open one and re-notifies its recipients only when the temperature
is higher; a report after the day's escalation was closed opens a new one. The scheduler passes an
explicit `dedup_key` for missed reports, which makes them strictly once: a second call returns the
existing escalation and no messages.

Deadlines live in the row (`deadline_at`), so `escalate_due` is a stateless, idempotent sweep: it
moves an escalation to the level due at `now` (several levels at once after downtime) and notifies
only the staff that the new level adds. Every outbound carries a dedup key, so a repeated sweep
sends nothing twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.dispatch import Context, NotFound, OutOfScope, Router, Tick
from bot.model import Inbound, Outbound
from bot.outbox import alert_of
from handlers import people, texts
from handlers.common import (
    audit,
    category_label,
    compact,
    fmt_temp,
    hhmm,
    local_date,
    private_channel,
    quote_text,
    staff_command,
    to_person,
)
from handlers.people import MAX_LEVEL
from storage.models import Building, Escalation, Household, OutboundMessage, Resident, Staff

log = logging.getLogger(__name__)
router = Router("escalation")
# Staff verbs on escalations; included before the resident routers (handlers/__init__.py).
commands = Router("escalation-commands")

KINDS = ("fever", "symptom", "emergency", "missed")


def _deadline(settings: Settings, opened_at: datetime, level: int) -> datetime | None:
    steps = settings.escalate_steps
    if level >= MAX_LEVEL or level >= len(steps):
        return None
    # Steps count from the opening ("15m,30m": the street hears 30 minutes after the report).
    return opened_at + steps[level]


def _building_of(esc: Escalation) -> Building | None:
    return esc.household.building if esc.household is not None else esc.building


def _chain_of(settings: Settings, esc: Escalation, resident: Resident | None) -> dict:
    b = _building_of(esc)
    return dict(resident=resident, day=local_date(settings, esc.opened_at),
                street_id=b.grid.community.street_id if b is not None else None)


async def recipients(session: AsyncSession, settings: Settings, esc: Escalation, level: int,
                     resident: Resident | None = None) -> list[Staff]:
    """Everyone who is told of `esc` at `level` (handlers.people.chain decides)."""
    if resident is None and esc.resident_id:
        resident = await session.get(Resident, esc.resident_id)
    return await people.chain(session, esc.grid_id, level, **_chain_of(settings, esc, resident))


@dataclass
class Opened:
    """What `open_escalation` did: the escalation, whether this call created it, who was told."""

    escalation: Escalation
    created: bool
    recipients: list[Staff]
    messages: list[Outbound]


async def alert_text(session: AsyncSession, settings: Settings, esc: Escalation, *, header: str) -> str:
    resident = await session.get(Resident, esc.resident_id) if esc.resident_id else None
    day = local_date(settings, esc.opened_at)
    who = resident.name if resident else (esc.subject or "")
    cat = await category_label(session, resident, day)
    lines = [f"【{texts.KIND_ZH.get(esc.kind, esc.kind)} {esc.code}】{header}".rstrip(),
             f"{esc.place} {who}{'（' + cat + '）' if cat else ''}".strip()]
    if esc.household is None and esc.sender_id:
        # only the name the sender chose is known; the id lets a worker find them in the group
        lines.append(texts.UNREGISTERED_SENDER.format(name=esc.sender_name or "", channel=esc.sender_channel or "",
                                                      id=esc.sender_id))
    if esc.reporter_label:
        lines.append(f"{esc.reporter_label}代报")
    if esc.summary:
        lines.append(esc.summary)
    if esc.text:
        lines.append(f"原话：“{quote_text(esc.text)}”")
    lines.append(f"报告时间：{hhmm(settings, esc.opened_at)}")
    if esc.kind == "emergency":
        lines.append("已提示居民拨打120，请立即联系！")
    lines.append(f"回复“收到 {esc.code}”确认，“完成 {esc.code} 备注”办结。")
    return "\n".join(lines)


async def _phone_line(session: AsyncSession, esc: Escalation) -> str | None:
    """The number to call: the person's own, else the household's first on the roster."""
    if esc.household_id is None:
        return None
    phones = (await session.scalars(select(Resident.phone).where(
        Resident.household_id == esc.household_id, Resident.phone.is_not(None))
        .order_by(Resident.id != (esc.resident_id or 0), Resident.id))).all()
    phone = next((p for p in phones if p), None)
    return f"电话：{phone}" if phone else None


async def notify_alert(session: AsyncSession, esc: Escalation, staff: list[Staff], text: str, key: str
                        ) -> list[Outbound]:
    """The alert to each recipient; those whose own grid it is also get the household's phone (a
    street officer or a 1+4 team member outside the grid does not)."""
    phone = await _phone_line(session, esc)
    out = []
    for st in staff:
        body = text
        if phone and (await people.scope_of(session, st)).allows(esc.grid_id):
            head, _, rest = text.partition("\n")
            first, _, tail = rest.partition("\n")
            body = "\n".join(x for x in (head, first, phone, tail) if x)
        out.append(to_person(st, body, kind="escalation", dedup_key=f"{key}:s{st.id}"))
    return compact(out)


def _notify(staff: list[Staff], text: str, key: str) -> list[Outbound]:
    return compact(to_person(s, text, kind="escalation", dedup_key=f"{key}:s{s.id}") for s in staff)


async def open_escalation(
    session: AsyncSession,
    settings: Settings,
    now: datetime,
    *,
    kind: str,
    household: Household | None,
    resident: Resident | None,
    text: str,
    summary: str,
    temperature: float | None = None,
    inbound_id: int | None = None,
    dedup_key: str | None = None,
    reporter: Resident | None = None,
    building: Building | None = None,
    sender: Inbound | None = None,
    subject: str | None = None,
    reporter_label: str | None = None,
) -> Opened:
    """Opens (or, the same day, updates) an escalation; returns it with the staff messages to send.

    `resident` is the person it concerns, when known; `reporter` the resident who wrote (for a
    family member or a neighbour), who is told when someone takes it on. Without a household, the
    escalation is on `building` (a group member the roster does not know, `sender`), or on nothing
    at all (a private message with no address): the chain then starts where someone can hear it.
    `subject` names the person as written ("王某某"); `reporter_label` who reported ("楼长刘红")."""
    if kind not in KINDS:
        raise ValueError(f"unknown escalation kind {kind!r}")
    if household is None and sender is None:
        raise ValueError("an escalation without a household needs its sender")
    strict = dedup_key is not None
    day = local_date(settings, now).isoformat()
    key = dedup_key or f"{kind}:{_subject_key(household, resident, building, sender, subject)}:{day}"
    existing = await session.scalar(
        select(Escalation).where(or_(Escalation.dedup_key == key, Escalation.dedup_key.like(key + "#%")))
        .order_by(Escalation.id.desc()).limit(1))
    if existing is not None and (strict or existing.status != "closed"):
        if strict:
            return Opened(existing, False, [], [])
        told = await recipients(session, settings, existing, existing.level)
        return Opened(existing, False, told, await _update(session, settings, now, existing, told, text=text,
                                                           summary=summary, temperature=temperature))
    if existing is not None:  # the day's escalation was closed: a new report is a new case
        key = f"{key}#{existing.id}"

    place = household.building if household is not None else building
    # whoever wrote, when the roster does not know them (yet): they hear the answer on their channel
    unknown_sender = sender is not None and reporter is None and resident is None
    esc = Escalation(kind=kind, household_id=household.id if household else None, household=household,
                     building_id=place.id if place is not None else None, building=place,
                     resident_id=resident.id if resident else None,
                     reporter_id=(reporter or resident).id if (reporter or resident) else None,
                     grid_id=place.grid_id if place is not None else None,
                     sender_channel=sender.channel if unknown_sender else None,
                     sender_id=sender.sender_id if unknown_sender else None,
                     sender_name=(sender.sender_name or "")[:100] if unknown_sender else None,
                     subject=(subject or "")[:100] or None, reporter_label=(reporter_label or "")[:100] or None,
                     level=0, status="open", summary=summary, text=text[:2000], temperature=temperature,
                     inbound_id=inbound_id, dedup_key=key, opened_at=now)
    session.add(esc)
    await session.flush()
    level, staff = await people.first_level(session, esc.grid_id, MAX_LEVEL if kind == "emergency" else 0,
                                            **_chain_of(settings, esc, resident))
    esc.level = level
    esc.deadline_at = _deadline(settings, now, level)
    if not staff:
        log.error("escalation %s of grid %s has no recipients at any level", esc.code, esc.grid_id)
    log.info("escalation %s opened: kind=%s household=%s level=%s recipients=%s",
             esc.code, kind, esc.household_id, level, [s.id for s in staff])
    body = await alert_text(session, settings, esc, header="")
    return Opened(esc, True, staff, await notify_alert(session, esc, staff, body, f"esc:{esc.id}:L{level}"))


def _subject_key(household: Household | None, resident: Resident | None, building: Building | None,
                 sender: Inbound | None, subject: str | None) -> str:
    """Whom the day's one escalation of a kind is about."""
    if resident is not None:
        return f"r{resident.id}"
    if household is not None:
        return f"h{household.id}"
    assert sender is not None
    who = f"u{sender.channel}:{sender.sender_id}"
    if subject:  # a leader reporting two unlisted people: two cases
        who += ":" + hashlib.sha256(subject.encode()).hexdigest()[:12]
    return f"{who}:b{building.id if building is not None else 0}"


async def _update(session: AsyncSession, settings: Settings, now: datetime, esc: Escalation,
                  staff: list[Staff], *, text: str, summary: str, temperature: float | None) -> list[Outbound]:
    worse = temperature is not None and (esc.temperature is None or temperature > esc.temperature + 0.05)
    esc.text = ((esc.text + "\n" if esc.text else "") + text)[-2000:]
    if summary:
        esc.summary = summary
    if not worse:
        return []
    before = esc.temperature
    esc.temperature = temperature
    if esc.status == "acked" and esc.acked_by:
        # the one on it must know; others were already told it is handled
        staff = [s for s in staff if s.id == esc.acked_by] or staff
    resident = await session.get(Resident, esc.resident_id) if esc.resident_id else None
    who = f"{esc.place} {resident.name if resident else (esc.subject or '')}".strip()
    since = f"（此前{fmt_temp(before)}）" if before is not None else ""
    msg = (f"【{texts.KIND_ZH.get(esc.kind, esc.kind)} {esc.code}·更新】{who}\n"
           f"体温升至{fmt_temp(temperature)}{since}\n原话：“{quote_text(text)}”\n报告时间：{hhmm(settings, now)}")
    return _notify(staff, msg, f"esc:{esc.id}:upd:{temperature:.1f}")


async def escalate_due(session: AsyncSession, settings: Settings, now: datetime) -> list[Outbound]:
    """Moves every open, unacknowledged escalation whose deadline has passed up the chain."""
    rows = (await session.scalars(
        select(Escalation).where(Escalation.status == "open", Escalation.deadline_at.is_not(None),
                                 Escalation.deadline_at <= now).order_by(Escalation.id)
        .with_for_update(skip_locked=True, of=Escalation))).unique().all()
    out: list[Outbound] = []
    for esc in rows:
        old = esc.level
        level = old
        deadline = esc.deadline_at
        while deadline is not None and deadline <= now and level < MAX_LEVEL:
            level += 1
            deadline = _deadline(settings, esc.opened_at, level)
        before = {s.id for s in await recipients(session, settings, esc, old)}
        after = await recipients(session, settings, esc, level)
        new = [s for s in after if s.id not in before]
        esc.level = level
        esc.deadline_at = deadline
        minutes = int((now - esc.opened_at).total_seconds() // 60)
        # Whom no channel reached (bot/sender.py): the reason it climbs early, not "told".
        missed = await _unreachable(session, esc.id)
        waited = [s.name for s in after if s.id in before and s.id not in missed]
        lost = [people.staff_title(s) for s in after if s.id in missed]
        header = (f"已{minutes}分钟无人确认" if minutes or not lost else "") + (
            f"（已通知：{'、'.join(waited)}）" if waited else "") + (
            f"（{'、'.join(lost)}收不到消息，请电话联系）" if lost else "")
        body = await alert_text(session, settings, esc, header=header)
        out += await notify_alert(session, esc, new, body, f"esc:{esc.id}:L{level}")
        log.info("escalation %s moved up %s→%s, %s new recipients", esc.code, old, level, len(new))
    return out


async def _unreachable(session: AsyncSession, esc_id: int) -> set[int]:
    """Staff ids whose alerts of this escalation no channel delivered."""
    keys = (await session.scalars(select(OutboundMessage.dedup_key).where(
        OutboundMessage.escalation_id == esc_id, OutboundMessage.status == "unreachable"))).all()
    return {a[1] for k in keys if (a := alert_of("escalation", k)) is not None}


@router.timer("escalation-sweep")
async def escalation_sweep(tick: Tick) -> AsyncIterator[Sequence[Outbound]]:
    yield await escalate_due(tick.s, tick.settings, tick.now)


# --- acting on an escalation (staff commands) ---------------------------------------------------------


async def _get_for_staff(session: AsyncSession, settings: Settings, staff: Staff, code: str) -> Escalation:
    try:
        esc_id = int(code.upper().lstrip("E"))
    except ValueError:
        raise NotFound(texts.NOT_FOUND_CODE.format(code=code)) from None
    esc = await session.get(Escalation, esc_id)
    code = f"E{esc_id}"
    if esc is None:
        raise NotFound(texts.NOT_FOUND_CODE.format(code=code))
    if (await people.scope_of(session, staff)).allows(esc.grid_id):
        return esc
    # 1+4 team members, the medic of the team and the street officer: whoever was told may act
    if staff.id in {s.id for s in await recipients(session, settings, esc, esc.level)}:
        return esc
    raise OutOfScope(texts.OUT_OF_SCOPE.format(code=code))


async def ack_escalation(session: AsyncSession, settings: Settings, now: datetime, staff: Staff,
                         code: str) -> list[Outbound]:
    """收到 E23: stops the chain and tells the reporter privately that someone is on it."""
    esc = await _get_for_staff(session, settings, staff, code)
    if esc.status == "closed":
        return compact([to_person(staff, texts.ESC_ALREADY_CLOSED.format(code=esc.code))])
    if esc.status == "acked":
        by = await session.get(Staff, esc.acked_by) if esc.acked_by else None
        return compact([to_person(staff, texts.ESC_ALREADY_ACKED.format(
            code=esc.code, name=by.name if by else "", at=hhmm(settings, esc.acked_at or now)))])
    others = [s for s in await recipients(session, settings, esc, esc.level) if s.id != staff.id]
    esc.status, esc.acked_by, esc.acked_at, esc.deadline_at = "acked", staff.id, now, None
    audit(session, now, staff, "escalation.ack", esc.code, household=esc.place)
    out = [to_person(staff, texts.ESC_ACKED.format(code=esc.code))]
    if esc.kind != "missed":
        out.append(await _to_reporter(session, esc, texts.ACKED_TO_RESIDENT.format(role=staff.role, name=staff.name),
                                      f"esc:{esc.id}:ack-resident"))
    # the others who were alerted can stand down
    out += _notify(others, texts.ESC_ACKED_OTHERS.format(code=esc.code, role=staff.role, name=staff.name),
                   f"esc:{esc.id}:acked")
    return compact(out)


async def close_escalation(session: AsyncSession, settings: Settings, now: datetime, staff: Staff, code: str,
                           note: str | None = None) -> list[Outbound]:
    """完成 E23 已送医: closes (and acknowledges, if nobody had) with the note; the reporter hears
    that it was dealt with and what was done — not a promise of a call that is already over."""
    esc = await _get_for_staff(session, settings, staff, code)
    if esc.status == "closed":
        return compact([to_person(staff, texts.ESC_ALREADY_CLOSED.format(code=esc.code))])
    others = ([s for s in await recipients(session, settings, esc, esc.level) if s.id != staff.id]
              if esc.status == "open" else [])
    if esc.status == "open":
        esc.acked_by, esc.acked_at = staff.id, now
    esc.status, esc.closed_by, esc.closed_at, esc.deadline_at = "closed", staff.id, now, None
    esc.note = note or None
    # the note may hold health words ("已送医"); the audit keeps only that there is one
    audit(session, now, staff, "escalation.close", esc.code, household=esc.place, note=bool(note))
    out: list[Outbound | None] = [to_person(staff, texts.ESC_CLOSED.format(code=esc.code))]
    if esc.kind != "missed":
        out.append(await _to_reporter(session, esc, texts.CLOSED_TO_RESIDENT.format(
            role=staff.role, name=staff.name, note=f"处理情况：{note}" if note else ""),
            f"esc:{esc.id}:closed-resident"))
    # nobody had acknowledged it: the others who were alerted can stand down
    out += _notify(others, texts.ESC_CLOSED_OTHERS.format(code=esc.code, role=staff.role, name=staff.name),
                   f"esc:{esc.id}:closed")
    return compact(out)


async def _to_reporter(session: AsyncSession, esc: Escalation, text: str, key: str) -> Outbound | None:
    """A private message to whoever reported it: the resident who wrote, else the person it
    concerns, else the unregistered sender (on the channel they wrote on)."""
    rid = esc.reporter_id or esc.resident_id
    resident = await session.get(Resident, rid) if rid else None
    if resident is not None:
        return to_person(resident, text, dedup_key=key)
    if esc.sender_id and esc.sender_channel:
        return Outbound(channel=private_channel(esc.sender_channel), to_user=esc.sender_id, text=text,
                        dedup_key=key)
    return None


@commands.message(staff_command("收到", code="E"))
async def on_ack(ctx: Context) -> list[Outbound]:
    return await ack_escalation(ctx.session, ctx.settings, ctx.now, ctx.staff, ctx.data["code"])


@commands.message(staff_command("完成", code="E"))
async def on_close(ctx: Context) -> list[Outbound]:
    return await close_escalation(ctx.session, ctx.settings, ctx.now, ctx.staff, ctx.data["code"], ctx.data["note"])


__all__ = ["router", "commands", "Opened", "open_escalation", "escalate_due", "ack_escalation", "close_escalation", "recipients"]
