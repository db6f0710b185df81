"""Registration: an unknown sender binds themselves to a household of the roster ("3-2-501 王芳").

- Only households that exist bind. In a building group the building must be that group's; in
  private any building with that number, and when several communities have one, the sender is
  asked to name the community.
- A roster resident of that household with the same name and no chat id yet is bound instead of
  creating a new one; the grid worker hears of each new binding.
- The first message is not lost: a check-in, request or emergency in the binding message is handled
  right after the binding, and a fever the sender reported earlier (before they gave an address) is
  recorded then as well.
- An unknown sender without an address gets the question privately (in groups at most once a day).
  A fever or emergency from them in a building group goes to that building's grid worker at once
  (an emergency to the whole chain) as "未登记居民": a fever must never be lost.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.dispatch import Context, Router
from bot.model import Inbound, Outbound
from handlers import texts
from handlers.common import (
    compact,
    find_address_in,
    grid_workers,
    group_message,
    local_date,
    to_person,
    to_sender,
)
from storage.models import Building, Household, InboundMessage, Resident, Staff
from storage.queries import households_at, split_label, staff_for_grid, staff_for_street

log = logging.getLogger(__name__)
router = Router("registration")

_NAME_CUE = re.compile(r"(?:我是|我叫|姓名|名字)\s*[:：]?\s*([\u4e00-\u9fff·]{2,5})")
_ADDRESS_BITS = re.compile(r"[\d\-－—.．]+|号楼|栋|幢|单元|号院|院|室|号|楼|户")
_NOT_NAMES = {"正常", "平安", "都好", "全家", "报平安", "你好", "您好", "登记", "住址", "地址", "在吗", "谢谢"}
# How far back a fever reported before registering is still picked up when the sender binds.
LOOK_BACK = timedelta(hours=24)


def _is_unknown(ctx: Context) -> bool:
    return ctx.resident is None and ctx.staff is None


def extract_name(text: str, has_report: bool) -> str | None:
    """The sender's name in a registration message, when it is plainly there."""
    m = _NAME_CUE.search(text)
    if m:
        return m.group(1)
    if has_report:
        return None  # "3-2-501 36.5 正常": the rest is the report, not a name
    rest = _ADDRESS_BITS.sub(" ", text)
    rest = re.sub(r"[\s,，。.!！:：;；、~～]+", " ", rest).strip()
    if re.fullmatch(r"[\u4e00-\u9fff·]{2,5}", rest) and rest not in _NOT_NAMES:
        return rest
    return None


async def _alert_unregistered(ctx: Context, building: Building, emergency: bool) -> list[Outbound]:
    """A fever or emergency from someone the roster does not know, in a building group."""
    s = ctx.session
    staff = list(await grid_workers(s, building.grid_id))
    if emergency:
        staff += await staff_for_grid(s, building.grid_id, ["网格长", "医护"])
        staff += await staff_for_street(s, building.grid.community.street_id, ["街道值班"])
    if not staff:  # a grid without a worker: its leader, then the street
        staff = list(await staff_for_grid(s, building.grid_id, ["网格长"])) or \
            list(await staff_for_street(s, building.grid.community.street_id, ["街道值班"]))
    kind = "紧急求助" if emergency else "发热/不适报告"
    who = ctx.inbound.sender_name or ctx.inbound.sender_id
    text = (f"【{kind}·{texts.UNREGISTERED}】{building.name}群 {who}\n原话：“{ctx.text}”\n"
            f"此人尚未登记住址，请在群里或私聊联系确认。")
    log.warning("unregistered %s in building %s, alerting %s staff", kind, building.id, len(staff))
    seen: set[int] = set()
    out = []
    for st in staff:
        if st.id not in seen:
            seen.add(st.id)
            out.append(to_person(st, text, kind="escalation", dedup_key=f"unreg:{ctx.inbound_id or ctx.inbound.msg_id}:s{st.id}"))
    return compact(out)


async def _street_duty_everywhere(ctx: Context) -> list[Staff]:
    rows = await ctx.session.scalars(select(Staff).where(Staff.role == "街道值班").order_by(Staff.id))
    return list(rows.all())


async def _ask(ctx: Context) -> list[Outbound]:
    p = ctx.parsed
    emergency = bool(p and p.emergency)
    fever = bool(p and (p.fever or p.checkin == "abnormal"))
    out: list[Outbound | None] = []
    if ctx.inbound.is_group and ctx.building is not None and (emergency or fever):
        out += await _alert_unregistered(ctx, ctx.building, emergency)
        out.append(to_sender(ctx, texts.REG_EMERGENCY if emergency else texts.REG_FEVER))
        out.append(group_message(ctx.building, texts.GROUP_ABNORMAL, channel=ctx.inbound.channel,
                                 chat_id=ctx.inbound.chat_id, reply_to=ctx.inbound.reply_to))
        return compact(out)
    if emergency:
        # no building to go by: the street duty officers are the last line
        text = (f"【紧急求助·{texts.UNREGISTERED}】私聊 {ctx.inbound.sender_name or ctx.inbound.sender_id}"
                f"（{ctx.inbound.channel}）\n原话：“{ctx.text}”\n住址不明，请立即联系。")
        out += [to_person(st, text, kind="escalation", dedup_key=f"unreg:{ctx.inbound_id or ctx.inbound.msg_id}:s{st.id}")
                for st in await _street_duty_everywhere(ctx)]
        out.append(to_sender(ctx, texts.REG_EMERGENCY))
        return compact(out)
    if ctx.inbound.is_group:
        # chatter from an unknown member: ask privately, at most once a day
        day = local_date(ctx.settings, ctx.now).isoformat()
        ask = to_sender(ctx, texts.REG_ASK)
        return [dataclasses.replace(ask, dedup_key=f"reg-ask:{ctx.inbound.channel}:{ctx.inbound.sender_id}:{day}")]
    return [to_sender(ctx, texts.REG_FEVER if fever else texts.REG_ASK)]


async def _candidates(ctx: Context, address: str) -> tuple[list[Household], str | None]:
    """Households the address may mean, or a reply explaining why none/which."""
    parts = split_label(address)
    if parts is None:
        return [], texts.REG_ASK
    b = parts[0]
    if ctx.inbound.is_group and ctx.building is not None:
        if b and b != ctx.building.number:
            return [], texts.REG_WRONG_BUILDING.format(building=ctx.building.name, address=address)
        found = await households_at(ctx.session, address, building=ctx.building)
    else:
        if not b:
            return [], texts.REG_ASK
        found = await households_at(ctx.session, address)
    if not found:
        return [], texts.REG_NOT_FOUND.format(address=address.strip("-"))
    communities = {h.building.grid.community.name for h in found}
    if len(communities) > 1:
        named = [h for h in found if h.building.grid.community.name in ctx.text]
        if named:
            found = named
        else:
            choices = "、".join(sorted(communities))
            return [], texts.REG_AMBIGUOUS.format(number=b, choices=choices,
                                                  example=f"{sorted(communities)[0]} {address}")
    return found, None


async def _bind(ctx: Context, household: Household, name: str) -> tuple[Resident | None, list[Outbound]]:
    s = ctx.session
    inbound = ctx.inbound
    resident = await s.scalar(select(Resident).where(Resident.household_id == household.id, Resident.name == name))
    if resident is not None and resident.channel_user_id and resident.channel_user_id != inbound.sender_id:
        return None, [to_sender(ctx, texts.REG_NAME_TAKEN.format(label=household.label, name=name))]
    try:
        async with s.begin_nested():
            if resident is None:
                resident = Resident(household_id=household.id, household=household, name=name, category="常住")
                s.add(resident)
            resident.channel, resident.channel_user_id, resident.bound_at = inbound.channel, inbound.sender_id, ctx.now
    except IntegrityError:
        # the same sender bound a moment ago (two messages at once): use that binding
        resident = await s.scalar(select(Resident).where(Resident.channel == inbound.channel,
                                                         Resident.channel_user_id == inbound.sender_id))
        if resident is None:
            raise
        return resident, []
    log.info("bound sender on %s to household %s as resident %s", inbound.channel, household.id, resident.id)
    out: list[Outbound | None] = [to_sender(ctx, texts.REG_DONE.format(label=household.label, name=name))]
    note = texts.REG_TO_WORKER.format(label=household.label, name=name, channel=inbound.channel)
    out += [to_person(w, note, kind="registration") for w in await grid_workers(s, household.building.grid_id)]
    return resident, compact(out)


async def _earlier_health_report(ctx: Context) -> list[Outbound]:
    """A fever or symptom this sender reported before they were registered: record it now."""
    try:
        from nlp import parse
    except ImportError:  # pragma: no cover - the parser is part of the product
        return []
    rows = (await ctx.session.scalars(
        select(InboundMessage).where(
            InboundMessage.channel == ctx.inbound.channel, InboundMessage.sender_id == ctx.inbound.sender_id,
            InboundMessage.received_at >= ctx.now - LOOK_BACK,
            *( [InboundMessage.id != ctx.inbound_id] if ctx.inbound_id else []))
        .order_by(InboundMessage.id.desc()).limit(20))).all()
    from handlers.checkin import record_report

    for row in rows:
        parsed = parse(row.text, fever_at=ctx.settings.fever_at)
        if parsed.emergency or parsed.fever or parsed.checkin == "abnormal":
            earlier = Inbound(channel=row.channel, msg_id=row.msg_id, sender_id=row.sender_id, text=row.text,
                              sent_at=row.sent_at, chat_id=row.chat_id, sender_name=row.sender_name,
                              kind=row.kind, reply_to=None)
            sub = dataclasses.replace(ctx, inbound=earlier, inbound_id=row.id, parsed=parsed,
                                      building=ctx.building if row.chat_id == ctx.inbound.chat_id else None)
            return await record_report(sub)
    return []


@router.message(_is_unknown)
async def on_unknown_sender(ctx: Context) -> list[Outbound]:
    p = ctx.parsed
    address = (getattr(p, "address", None) if p else None) or find_address_in(ctx.text)
    if not address:
        return await _ask(ctx)
    found, problem = await _candidates(ctx, address)
    if problem:
        out = [to_sender(ctx, problem)]
        if p and (p.emergency or p.fever) and ctx.building is not None:
            out += await _alert_unregistered(ctx, ctx.building, bool(p.emergency))
        return out
    household = found[0]
    has_report = bool(p and (p.checkin or p.emergency or p.request))
    name = extract_name(ctx.text, has_report) or (ctx.inbound.sender_name or "").strip()[:60] or "居民"
    resident, out = await _bind(ctx, household, name)
    if resident is None:
        return out
    ctx.resident, ctx.household = resident, household
    if has_report:
        from handlers.checkin import record_report
        from handlers.requests import request_from_message

        if p.checkin is not None or p.emergency:
            out += await record_report(ctx)
        else:
            out += await request_from_message(ctx, household)
    else:
        out += await _earlier_health_report(ctx)
    return out
