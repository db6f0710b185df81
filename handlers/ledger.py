"""The day's numbers: the midday progress line in each group, and the evening ledger (台账) to each
grid worker privately. Both count reported households with the one rule of storage/ledger.py."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.dispatch import Context, Router, Tick, UserError
from bot.model import Outbound
from handlers import people, texts
from handlers.common import chunks, group_buildings, local_date, staff_command, to_person
from storage.ledger import (
    compute_ledger,
    format_grid_ledger,
    household_counts,
    reported_households,
    unreported_households,
)
from storage.models import Building, Grid, Household, ListLine, Staff
from storage.queries import natural_key

router = Router("ledger")
commands = Router("ledger-commands")
# Unreported households listed per building before the list is cut ("…等 N 户").
LIST_CAP = 80
# 接龙 lines that matched no household, quoted in the evening ledger before the list is cut.
UNMATCHED_SHOWN = 5


@router.timer("progress")
async def progress(tick: Tick) -> AsyncIterator[Sequence[Outbound]]:
    """One line per building group: households reported / due. Counts only."""
    day = local_date(tick.settings, tick.now)
    buildings = await group_buildings(tick.s)
    due = await household_counts(tick.s, None, by=Household.building_id)
    reported = await reported_households(tick.s, None, day, by=Household.building_id)
    for part in chunks(buildings):
        yield [Outbound(channel=channel or "wecom", to_chat=chat_id, kind="progress",
                        text=texts.progress(reported.get(bid, 0), due[bid]),
                        dedup_key=f"progress:{bid}:{day.isoformat()}")
               for bid, chat_id, channel in part if due.get(bid)]


async def _unmatched_list_lines(session: AsyncSession, day: date) -> dict[int, list[str]]:
    """接龙 lines of the day that named no household of the roster, by the grid of their group."""
    rows = await session.execute(
        select(Building.grid_id, ListLine.line).join(Building, Building.chat_id == ListLine.chat_id)
        .where(ListLine.date == day, ListLine.household_id.is_(None)).order_by(ListLine.id))
    out: dict[int, list[str]] = defaultdict(list)
    for grid_id, line in rows.all():
        out[grid_id].append(line)
    return out


@router.timer("ledger")
async def ledger(tick: Tick) -> AsyncIterator[Sequence[Outbound]]:
    """Each grid worker's private daily ledger; a worker of several grids gets one message."""
    day = local_date(tick.settings, tick.now)
    data = await compute_ledger(tick.s, day, tick.settings.tz)
    grid_ids = dict((await tick.s.execute(select(Grid.name, Grid.id))).all())
    contacts = await people.grid_contacts(tick.s, list(grid_ids.values()))
    unmatched = await _unmatched_list_lines(tick.s, day)
    by_staff: dict[int, tuple[Staff, list[str]]] = {}
    for g in data["grids"]:
        text = format_grid_ledger(g, day)
        lines = unmatched.get(grid_ids[g["grid"]], [])
        if lines:
            shown = "；".join(line[:40] for line in lines[:UNMATCHED_SHOWN])
            text += "\n" + texts.LIST_UNMATCHED.format(n=len(lines), lines=shown,
                                                       more="…" if len(lines) > UNMATCHED_SHOWN else "")
        for st in contacts.get(grid_ids[g["grid"]], []):
            by_staff.setdefault(st.id, (st, []))[1].append(text)
    staff = sorted(by_staff.values(), key=lambda v: v[0].id)
    if not staff:
        tick.notes.append("no grid has a worker or leader to send the ledger to")
    for part in chunks(staff):
        yield [m for st, parts in part
               if (m := to_person(st, "\n\n".join(parts), kind="ledger", dedup_key=f"ledger:{st.id}:{day.isoformat()}"))]


# --- 未报 / 今日 ------------------------------------------------------------------------------------


async def _my_grids(ctx: Context) -> list[Grid]:
    ids = (await people.scope_of(ctx.session, ctx.staff)).grid_ids
    if not ids:
        raise UserError("您的账号还没有负责的网格，请联系管理员。")
    rows = await ctx.session.scalars(select(Grid).where(Grid.id.in_(ids)))
    return sorted(rows.unique().all(), key=lambda g: natural_key(g.name))


async def unreported_text(ctx: Context) -> str:
    grids = await _my_grids(ctx)
    day = local_date(ctx.settings, ctx.now)
    grid_ids = [g.id for g in grids]
    total = sum((await household_counts(ctx.session, grid_ids)).values())
    missing = await unreported_households(ctx.session, grid_ids, day)
    if not missing:
        return texts.UNREPORTED_NONE.format(total=total)
    by_building: dict[str, list[Household]] = defaultdict(list)
    for h in missing:
        by_building[h.building.name].append(h)
    lines = [texts.UNREPORTED_HEAD.format(n=len(missing), total=total)]
    for name in sorted(by_building, key=natural_key):
        labels = sorted((h.label for h in by_building[name]), key=natural_key)
        more = f" …等{len(labels)}户" if len(labels) > LIST_CAP else ""
        lines.append(f"{name}（{len(labels)}户）：" + "、".join(labels[:LIST_CAP]) + more)
    return "\n".join(lines)


async def today_text(ctx: Context) -> str:
    grids = await _my_grids(ctx)
    day = local_date(ctx.settings, ctx.now)
    ledger = await compute_ledger(ctx.session, day, ctx.settings.tz, grid_ids=[g.id for g in grids])
    return "\n\n".join(format_grid_ledger(g, day) for g in ledger["grids"])


@commands.message(staff_command("未报"))
async def on_unreported(ctx: Context) -> list[Outbound]:
    return [ctx.reply(await unreported_text(ctx))]


@commands.message(staff_command("今日", "今天"))
async def on_today(ctx: Context) -> list[Outbound]:
    return [ctx.reply(await today_text(ctx))]
