"""Commands of staff (网格员, 网格长, 街道, 民警, 医护, 志愿者) in a private chat with the bot.

    收到 E23 | 完成 E23 [备注] | 接单 R12 | 完成 R12 [备注] | 未报 | 今日
    隔离 3-2-501 [姓名] [11-20|2026-11-20] | 解除 3-2-501 [姓名] | 通知 3号楼|网格|全部 内容 | 帮助

Staff commands are private only: in a building group a staff member is one of the neighbours and
the bot stays silent (a command typed into a group would show codes and rooms to everyone).
A staff member acts only within the grids they cover (street roles: their street); members of a
1+4 team may also act on the escalations they were sent. Full-width spaces, colons and letters,
"收到E23" and "收到 e23" all work.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from datetime import date, timedelta

from sqlalchemy import select

from bot.dispatch import NOT_HANDLED, Context, Router, UserError
from bot.model import Outbound
from bot.outbox import enqueue
from handlers import texts
from handlers.common import (
    audit,
    compact,
    find_address_in,
    grids_of,
    local_date,
    normalize_command,
    to_person,
)
from handlers.escalation import ack_escalation, close_escalation
from handlers.notices import send_notice
from handlers.requests import finish_request, take_request
from storage.ledger import compute_ledger, format_grid_ledger
from storage.models import Building, CheckIn, Grid, Household, Quarantine, Resident, Staff
from storage.queries import households_at, natural_key

router = Router("worker")

VERBS = ("收到", "完成", "接单", "未报", "今日", "隔离", "解除", "通知", "帮助")
_COMMAND = re.compile(r"^(收到|完成|接单|未报|今日|今天|隔离|解除|通知|帮助|help|\?)\s*:?\s*(.*)$", re.I | re.S)
_CODE = re.compile(r"^([ER])\s*(\d+)\s*[,，:]?\s*(.*)$", re.I | re.S)
_FULL_DATE = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?$")
_SHORT_DATE = re.compile(r"^(\d{1,2})[-/.月](\d{1,2})日?$")
# Unreported households listed per building before the list is cut ("…等 N 户").
LIST_CAP = 80


def _command(ctx: Context) -> dict | bool:
    if ctx.staff is None or ctx.inbound.is_group:
        return False
    m = _COMMAND.match(normalize_command(ctx.text))
    if not m:
        return False
    return {"verb": m.group(1), "args": m.group(2).strip()}


@router.message(_command)
async def on_command(ctx: Context) -> list[Outbound]:
    verb, args = ctx.data["verb"], ctx.data["args"]
    staff: Staff = ctx.staff
    s, st, now = ctx.session, ctx.settings, ctx.now
    if verb in ("收到", "完成", "接单"):
        m = _CODE.match(args)
        if not m:
            raise UserError(f"请写上编号，例如：{verb} E23" if verb != "接单" else "请写上编号，例如：接单 R12")
        letter, number, note = m.group(1).upper(), m.group(2), m.group(3).strip()
        code = f"{letter}{number}"
        if letter == "E":
            if verb == "收到":
                return await ack_escalation(s, st, now, staff, code)
            if verb == "完成":
                return await close_escalation(s, st, now, staff, code, note or None)
            raise UserError("接单用于服务需求（R 开头），预警请回复“收到 " + code + "”。")
        if verb == "完成":
            return await finish_request(s, st, now, staff, code, note or None)
        return await take_request(s, st, now, staff, code)
    if verb == "未报":
        return [ctx.reply(await unreported_text(ctx))]
    if verb in ("今日", "今天"):
        return [ctx.reply(await today_text(ctx))]
    if verb == "隔离":
        return await quarantine(ctx, args)
    if verb == "解除":
        return await release(ctx, args)
    if verb == "通知":
        return await notice(ctx)
    return [ctx.reply(texts.STAFF_HELP)]


def _staff_private(ctx: Context) -> bool:
    return ctx.staff is not None and (ctx.inbound.is_group or ctx.resident is None)


@router.message(_staff_private)
async def on_other(ctx: Context) -> list[Outbound]:
    """Staff in a group: silence. Staff privately, not a command: a hint — unless they are also a
    resident, whose words then go to the resident handlers."""
    if ctx.inbound.is_group:
        if ctx.resident is not None:
            return NOT_HANDLED
        return []
    return [ctx.reply(texts.STAFF_UNKNOWN)]


# --- 未报 / 今日 ------------------------------------------------------------------------------------


async def _my_grids(ctx: Context) -> list[Grid]:
    ids = await grids_of(ctx.session, ctx.staff)
    if not ids:
        raise UserError("您的账号还没有负责的网格，请联系管理员。")
    rows = await ctx.session.scalars(select(Grid).where(Grid.id.in_(ids)))
    return sorted(rows.unique().all(), key=lambda g: natural_key(g.name))


async def unreported_text(ctx: Context) -> str:
    grids = await _my_grids(ctx)
    day = local_date(ctx.settings, ctx.now)
    households = (await ctx.session.scalars(
        select(Household).join(Building, Household.building_id == Building.id)
        .where(Building.grid_id.in_([g.id for g in grids])))).unique().all()
    reported = set((await ctx.session.scalars(
        select(CheckIn.household_id).where(CheckIn.date == day).distinct())).all())
    missing = [h for h in households if h.id not in reported]
    if not missing:
        return texts.UNREPORTED_NONE.format(total=len(households))
    by_building: dict[str, list[Household]] = defaultdict(list)
    for h in missing:
        by_building[h.building.name].append(h)
    lines = [texts.UNREPORTED_HEAD.format(n=len(missing), total=len(households))]
    for name in sorted(by_building, key=natural_key):
        labels = sorted((h.label for h in by_building[name]), key=natural_key)
        more = f" …等{len(labels)}户" if len(labels) > LIST_CAP else ""
        lines.append(f"{name}（{len(labels)}户）：" + "、".join(labels[:LIST_CAP]) + more)
    return "\n".join(lines)


async def today_text(ctx: Context) -> str:
    grids = await _my_grids(ctx)
    day = local_date(ctx.settings, ctx.now)
    ledger = await compute_ledger(ctx.session, day, ctx.settings, grid_names=[g.name for g in grids], now=ctx.now)
    return "\n\n".join(format_grid_ledger(g, day) for g in ledger["grids"])


# --- 隔离 / 解除 ------------------------------------------------------------------------------------


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


async def _household_in_scope(ctx: Context, address_text: str) -> Household:
    address = find_address_in(address_text)
    if not address:
        raise UserError("请写上户号，例如：隔离 3-2-501 11-20")
    grid_ids = await grids_of(ctx.session, ctx.staff)
    found = await households_at(ctx.session, address, grid_ids=grid_ids)
    if found:
        return found[0]
    if await households_at(ctx.session, address):
        raise UserError(texts.HOUSEHOLD_OUT_OF_SCOPE.format(label=address))
    raise UserError(texts.HOUSEHOLD_NOT_FOUND.format(address=address))


def _split_args(args: str) -> tuple[str, list[str]]:
    tokens = [t for t in re.split(r"[\s,，、:;；]+", args) if t]
    if not tokens:
        return "", []
    return tokens[0], tokens[1:]


async def _residents(ctx: Context, household: Household, name: str | None) -> list[Resident]:
    q = select(Resident).where(Resident.household_id == household.id).order_by(Resident.id)
    rows = list((await ctx.session.scalars(q)).unique().all())
    if name:
        rows = [r for r in rows if r.name == name]
        if not rows:
            raise UserError(texts.NO_SUCH_RESIDENT.format(label=household.label, name=name))
    if not rows:
        raise UserError(texts.NO_RESIDENTS.format(label=household.label))
    return rows


async def quarantine(ctx: Context, args: str) -> list[Outbound]:
    """隔离 3-2-501 [王芳] [11-20]: 居家隔离 from that date (default today) for settings.quarantine_days."""
    first, rest = _split_args(args)
    household = await _household_in_scope(ctx, first)
    today = local_date(ctx.settings, ctx.now)
    start, name = today, None
    for tok in rest:
        d = parse_day(tok, today)
        if d is not None:
            start = d
        elif re.search(r"\d", tok):
            raise UserError(texts.BAD_DATE.format(text=tok))
        else:
            name = tok
    days = ctx.settings.quarantine_days
    people = await _residents(ctx, household, name)
    out: list[Outbound | None] = []
    times = "、".join(t.strftime("%H:%M") for t in ctx.settings.reminder_times)
    for r in people:
        q = await ctx.session.scalar(select(Quarantine).where(Quarantine.resident_id == r.id,
                                                              Quarantine.released_at.is_(None)))
        if q is None:
            ctx.session.add(Quarantine(resident_id=r.id, start=start, days=days))
        else:
            q.start, q.days = start, days
        if r.category != "重点人员":
            r.category = "居家隔离"
        out.append(to_person(r, texts.QUARANTINE_TO_RESIDENT.format(
            start=f"{start.month}月{start.day}日", days=days, times=times)))
    audit(ctx.session, ctx.now, ctx.staff, "quarantine.start", household.label, start=start.isoformat(),
          days=days, residents=[r.id for r in people])
    end = start + timedelta(days=days - 1)
    out.insert(0, ctx.reply(texts.QUARANTINE_OK.format(
        label=household.label, names="、".join(r.name for r in people), start=start.isoformat(), days=days,
        end=end.isoformat())))
    return compact(out)


async def release(ctx: Context, args: str) -> list[Outbound]:
    """解除 3-2-501 [王芳]: ends the quarantine; category back to 常住 (a key person stays one)."""
    first, rest = _split_args(args)
    household = await _household_in_scope(ctx, first)
    name = next((t for t in rest if not re.search(r"\d", t)), None)
    people = await _residents(ctx, household, name)
    released = []
    out: list[Outbound | None] = []
    for r in people:
        qs = (await ctx.session.scalars(select(Quarantine).where(Quarantine.resident_id == r.id,
                                                                 Quarantine.released_at.is_(None)))).all()
        if not qs and r.category != "居家隔离":
            continue
        for q in qs:
            q.released_at, q.released_by = ctx.now, ctx.staff.id
        if r.category == "居家隔离":
            r.category = "常住"
        released.append(r)
        out.append(to_person(r, texts.RELEASE_TO_RESIDENT))
    if not released:
        return [ctx.reply(texts.RELEASE_NONE.format(label=household.label))]
    audit(ctx.session, ctx.now, ctx.staff, "quarantine.release", household.label,
          residents=[r.id for r in released])
    out.insert(0, ctx.reply(texts.RELEASE_OK.format(label=household.label,
                                                    names="、".join(r.name for r in released))))
    return compact(out)


# --- 通知 -------------------------------------------------------------------------------------------


async def notice(ctx: Context) -> list[Outbound]:
    # The notice keeps its own line breaks: take it from the raw text, not the folded command.
    m = re.match(r"^\s*通知\s*[:：]?\s*(\S+)\s+(.+)$", ctx.text, re.S)
    if not m:
        raise UserError(texts.NOTICE_USAGE)
    scope, text = unicodedata.normalize("NFKC", m.group(1)), m.group(2).strip()
    note, outs = await send_notice(ctx.session, ctx.settings, ctx.now, ctx.staff, scope, text)
    # enqueued here so that each row carries notice_id; the reply goes the ordinary way
    await enqueue(ctx.session, outs, ctx.now, inbound_id=ctx.inbound_id, notice_id=note.id)
    return [ctx.reply(texts.NOTICE_OK.format(n=len(outs)))]
