"""The day's ledger (台账): per grid, who reported, who did not, fevers, quarantines, open work.

Counted with grouped SQL, one query per figure for all grids at once, so that the whole district
(1,047 grids, 305k households) costs a handful of queries, not one per household.

Households: `households`, `reported` (any check-in that date), `safe` (reported, and every check-in
that date safe), `abnormal` (any abnormal check-in that date), `unreported` (labels, natural order).
People and items: `fevers` (distinct persons with a fever check-in that date), `quarantined` (active
on that date), `missed_reports` (missed-report escalations opened that local date),
`open_escalations` (not closed, now), `open_requests` (open or taken, now).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from pathlib import Path
from typing import TypedDict

from sqlalchemy import ColumnElement, distinct, exists, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Building,
    CheckIn,
    Escalation,
    Grid,
    Household,
    Quarantine,
    Resident,
    ServiceRequest,
)
from storage.queries import natural_key

UNREPORTED_SHOWN = 30


class GridLedger(TypedDict):
    """One grid's day (the `G` of `gridbot ledger --json` and `/api/ledger`)."""

    grid: str
    households: int
    reported: int
    safe: int
    abnormal: int
    unreported: list[str]
    fevers: int
    quarantined: int
    missed_reports: int
    open_escalations: int
    open_requests: int


class Ledger(TypedDict):
    date: str
    grids: list[GridLedger]


def reported_on(day: date) -> ColumnElement[bool]:
    """THE rule of what counts as reported: any check-in for the household on that local date.

    Every count of reported households (the ledger, 未报, the midday progress, the nudges, the web
    chart) filters `Household` rows with this condition.
    """
    return exists().where(CheckIn.household_id == Household.id, CheckIn.date == day)


async def reported_households(session: AsyncSession, grid_ids: Iterable[int] | None, day: date, *,
                              by: ColumnElement | None = None) -> dict[int, int]:
    """Reported households per grid (or per `by`, e.g. `Household.building_id`); None: all grids."""
    key = Building.grid_id if by is None else by
    q = (select(key, func.count(Household.id)).join(Building, Building.id == Household.building_id)
         .where(reported_on(day)).group_by(key))
    if grid_ids is not None:
        q = q.where(Building.grid_id.in_(list(grid_ids)))
    return {k: int(n) for k, n in (await session.execute(q)).all()}


async def household_counts(session: AsyncSession, grid_ids: Iterable[int] | None, *,
                           by: ColumnElement | None = None) -> dict[int, int]:
    """Households per grid (or per `by`)."""
    key = Building.grid_id if by is None else by
    q = select(key, func.count(Household.id)).join(Building, Building.id == Household.building_id).group_by(key)
    if grid_ids is not None:
        q = q.where(Building.grid_id.in_(list(grid_ids)))
    return {k: int(n) for k, n in (await session.execute(q)).all()}


async def unreported_households(session: AsyncSession, grid_ids: Iterable[int] | None, day: date) -> list[Household]:
    """The households of these grids with no report that day, in natural order."""
    q = select(Household).join(Building, Building.id == Household.building_id).where(~reported_on(day))
    if grid_ids is not None:
        q = q.where(Building.grid_id.in_(list(grid_ids)))
    rows = (await session.scalars(q)).unique().all()
    return sorted(rows, key=lambda h: natural_key(h.label))


class UnknownGrid(LookupError):
    """A grid name that is not in the database."""


def _label(number: str, unit: str, room: str) -> str:
    return f"{number}-{unit}-{room}" if unit else f"{number}-{room}"


def _day_bounds(day: date, tz: tzinfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tz)
    return start.astimezone(timezone.utc), (start + timedelta(days=1)).astimezone(timezone.utc)


async def compute_ledger(session: AsyncSession, day: date, tz: tzinfo, grid_names: list[str] | None = None,
                         *, grid_ids: Iterable[int] | None = None) -> Ledger:
    """`{"date": "YYYY-MM-DD", "grids": [G, ...]}` of the named grids (or ids; neither: all grids);
    raises UnknownGrid for a name not stored. The open counts are the database's state now."""
    q = select(Grid.id, Grid.name)
    if grid_names is not None:
        q = q.where(Grid.name.in_(grid_names))
    elif grid_ids is not None:
        grid_ids = list(grid_ids)
        q = q.where(Grid.id.in_(grid_ids))
    grids = dict((await session.execute(q)).all())
    if grid_names is not None:
        missing = sorted(set(grid_names) - set(grids.values()))
        if missing:
            raise UnknownGrid(f"没有这个网格: {'、'.join(missing)}")
    ids = list(grids)

    async def grouped(stmt) -> dict[int, int]:
        return {gid: int(n) for gid, n in (await session.execute(stmt)).all()}

    subset = grid_names is not None or grid_ids is not None

    def in_grids(col):
        # Filtering on the ids is only needed for a subset; for all grids it would just bloat SQL.
        return col.in_(ids) if subset else true()

    households = await household_counts(session, ids if subset else None)
    day_checkins = (select(Building.grid_id.label("grid_id"), CheckIn.household_id, CheckIn.status,
                           CheckIn.fever, CheckIn.person)
                    .join(Household, Household.id == CheckIn.household_id)
                    .join(Building, Building.id == Household.building_id)
                    .where(CheckIn.date == day, in_grids(Building.grid_id))).subquery()
    reported = await reported_households(session, ids if subset else None, day)
    abnormal = await grouped(select(day_checkins.c.grid_id, func.count(distinct(day_checkins.c.household_id)))
                             .where(day_checkins.c.status == "abnormal").group_by(day_checkins.c.grid_id))
    fever_people = (select(day_checkins.c.grid_id, day_checkins.c.household_id, day_checkins.c.person)
                    .where(day_checkins.c.fever.is_(True)).distinct().subquery())
    fevers = await grouped(select(fever_people.c.grid_id, func.count()).group_by(fever_people.c.grid_id))
    # a fever from someone the roster does not know (yet) has no check-in: its escalation counts
    day_start, day_end = _day_bounds(day, tz)
    unplaced = await grouped(
        select(Escalation.grid_id, func.count(Escalation.id))
        .where(Escalation.kind == "fever", Escalation.household_id.is_(None), Escalation.opened_at >= day_start,
               Escalation.opened_at < day_end, in_grids(Escalation.grid_id)).group_by(Escalation.grid_id))
    for gid, n in unplaced.items():
        fevers[gid] = fevers.get(gid, 0) + n

    unreported: dict[int, list[str]] = {gid: [] for gid in ids}
    rows = await session.execute(
        select(Building.grid_id, Building.number, Household.unit, Household.room)
        .join(Household, Household.building_id == Building.id)
        .where(in_grids(Building.grid_id), ~reported_on(day)))
    for gid, number, unit, room in rows.all():
        unreported.setdefault(gid, []).append(_label(number, unit, room))

    # Active on `day`: started, not past its last day, and not released before the day began.
    longest = await session.scalar(select(func.max(Quarantine.days))) or 0
    quarantined: dict[int, int] = {}
    if longest:
        rows = await session.execute(
            select(Building.grid_id, Quarantine.start, Quarantine.days)
            .join(Resident, Resident.id == Quarantine.resident_id)
            .join(Household, Household.id == Resident.household_id)
            .join(Building, Building.id == Household.building_id)
            .where(in_grids(Building.grid_id), Quarantine.start <= day,
                   Quarantine.start > day - timedelta(days=longest),
                   or_(Quarantine.released_at.is_(None), Quarantine.released_at >= day_start)))
        for gid, start, days in rows.all():
            if day <= start + timedelta(days=days - 1):
                quarantined[gid] = quarantined.get(gid, 0) + 1
    missed = await grouped(
        select(Escalation.grid_id, func.count(Escalation.id))
        .where(Escalation.kind == "missed", Escalation.opened_at >= day_start, Escalation.opened_at < day_end,
               in_grids(Escalation.grid_id)).group_by(Escalation.grid_id))
    open_esc = await grouped(
        select(Escalation.grid_id, func.count(Escalation.id))
        .where(Escalation.status != "closed", in_grids(Escalation.grid_id)).group_by(Escalation.grid_id))
    open_req = await grouped(
        select(ServiceRequest.grid_id, func.count(ServiceRequest.id))
        .where(ServiceRequest.status.in_(("open", "taken")), in_grids(ServiceRequest.grid_id))
        .group_by(ServiceRequest.grid_id))

    out: list[GridLedger] = []
    for gid in sorted(ids, key=lambda g: natural_key(grids[g])):
        rep = reported.get(gid, 0)
        ab = abnormal.get(gid, 0)
        out.append({
            "grid": grids[gid],
            "households": households.get(gid, 0),
            "reported": rep,
            "safe": rep - ab,
            "abnormal": ab,
            "unreported": sorted(unreported.get(gid, []), key=natural_key),
            "fevers": fevers.get(gid, 0),
            "quarantined": quarantined.get(gid, 0),
            "missed_reports": missed.get(gid, 0),
            "open_escalations": open_esc.get(gid, 0),
            "open_requests": open_req.get(gid, 0),
        })
    return {"date": day.isoformat(), "grids": out}


def format_grid_ledger(g: GridLedger, day: date) -> str:
    """A short text for a grid worker's private chat; counts and room numbers only, no names."""
    rate = f"（{g['reported'] * 100 // g['households']}%）" if g["households"] else ""
    lines = [
        f"{g['grid']} {day.month}月{day.day}日台账",
        f"户数 {g['households']}，已报 {g['reported']}{rate}，平安 {g['safe']}，异常 {g['abnormal']}",
    ]
    rooms = g["unreported"]
    if rooms:
        shown = "、".join(rooms[:UNREPORTED_SHOWN])
        more = f" 等{len(rooms)}户" if len(rooms) > UNREPORTED_SHOWN else ""
        lines.append(f"未报 {len(rooms)} 户：{shown}{more}")
    else:
        lines.append("未报 0 户：全部已报")
    lines.append(f"发热 {g['fevers']} 人，隔离中 {g['quarantined']} 人，漏报 {g['missed_reports']} 次")
    lines.append(f"未结预警 {g['open_escalations']} 件，未完成服务 {g['open_requests']} 件")
    return "\n".join(lines)


HEADERS = ("网格", "户数", "已报", "平安", "异常", "未报", "发热", "隔离中", "漏报", "未结预警", "未完成服务")


def format_table(ledger: Ledger) -> str:
    """The terminal form of `gridbot ledger`: one line a grid, then the unreported rooms."""
    import unicodedata

    def width(s: str) -> int:
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)

    table = [list(HEADERS)]
    for g in ledger["grids"]:
        table.append([g["grid"], *(str(g[k]) for k in ("households", "reported", "safe", "abnormal")),
                      str(len(g["unreported"])),
                      *(str(g[k]) for k in ("fevers", "quarantined", "missed_reports", "open_escalations",
                                            "open_requests"))])
    widths = [max(width(row[i]) for row in table) for i in range(len(HEADERS))]
    lines = [f"台账 {ledger['date']}"]
    for row in table:
        cells = [row[0] + " " * (widths[0] - width(row[0]))]
        cells += [" " * (widths[i] - width(c)) + c for i, c in enumerate(row) if i]
        lines.append("  ".join(cells))
    for g in ledger["grids"]:
        if g["unreported"]:
            lines.append(f"{g['grid']} 未报：{'、'.join(g['unreported'])}")
    return "\n".join(lines)


def write_ledger_xlsx(ledger: Ledger, path: str | Path) -> None:
    """Sheet 汇总: one row a grid; sheet 未报户: one row an unreported household."""
    import openpyxl
    from openpyxl.styles import Font

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "汇总"
    ws.append(["日期", ledger["date"]])
    ws.append(list(HEADERS))
    for cell in ws[2]:
        cell.font = Font(bold=True)
    for g in ledger["grids"]:
        ws.append([g["grid"], g["households"], g["reported"], g["safe"], g["abnormal"], len(g["unreported"]),
                   g["fevers"], g["quarantined"], g["missed_reports"], g["open_escalations"],
                   g["open_requests"]])
    ws.column_dimensions["A"].width = 18
    ws.freeze_panes = "B3"
    rooms = wb.create_sheet("未报户")
    rooms.append(["网格", "房号"])
    for cell in rooms[1]:
        cell.font = Font(bold=True)
    for g in ledger["grids"]:
        for label in g["unreported"]:
            rooms.append([g["grid"], label])
    rooms.column_dimensions["A"].width = 18
    rooms.column_dimensions["B"].width = 12
    wb.save(path)


# --- the same rule over a range of days, for any condition on Building (the web chart) ------------------


async def household_counts_where(session: AsyncSession, cond: ColumnElement[bool]) -> int:
    return await session.scalar(select(func.count(Household.id)).join(Building, Building.id == Household.building_id)
                                .where(cond)) or 0


async def reported_per_day(session: AsyncSession, cond: ColumnElement[bool], first: date, last: date) -> dict[date, int]:
    """Reported households (any check-in that date: `reported_on`) for each day of [first, last]."""
    rows = await session.execute(
        select(CheckIn.date, func.count(distinct(CheckIn.household_id)))
        .join(Household, Household.id == CheckIn.household_id)
        .join(Building, Building.id == Household.building_id)
        .where(cond, CheckIn.date >= first, CheckIn.date <= last).group_by(CheckIn.date))
    return {d: int(n) for d, n in rows.all()}
