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
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any, TypedDict

from sqlalchemy import ColumnElement, distinct, exists, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Building,
    CheckIn,
    Community,
    Escalation,
    Grid,
    Household,
    OutboundMessage,
    Quarantine,
    Reminder,
    Resident,
    ServiceRequest,
    Staff,
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


# --- the quarantine calendar: each day of a period × its reminder slots ---------------------------------

SLOT_STATES = ("normal", "abnormal", "missed", "pending", "released")


@dataclass
class BookRules:
    """What the calendar and the workbook need from the configuration and the words of the handlers
    (storage reads no settings): built once by bot/ledger_cmd.py `book_rules`."""

    tz: tzinfo
    slots: list[tuple[str, time]]  # ("am", 08:00), ("pm", 14:00): the quarantine reminders
    missed_after: timedelta  # a slot with no report this long after its reminder is missed
    symptom_names: dict[str, str] = field(default_factory=dict)
    kind_names: dict[str, str] = field(default_factory=dict)
    request_names: dict[str, str] = field(default_factory=dict)
    slot_names: dict[str, str] = field(default_factory=dict)

    def slot_of(self, local: time) -> str:
        current = self.slots[0][0] if self.slots else "am"
        for name, at in self.slots:
            if at <= local:
                current = name
        return current


def _reading(rows: list[Any]) -> dict[str, Any]:
    """The worst of a slot's or a day's reports and its latest reading: abnormal if any is."""
    rows = sorted(rows, key=lambda r: (r.created_at, r.id))
    temps = [r.temperature for r in rows if r.temperature is not None]
    latest = next((r.temperature for r in reversed(rows) if r.temperature is not None), None)
    abnormal = any(r.status == "abnormal" for r in rows)
    symptoms = list(dict.fromkeys(s for r in rows for s in (r.symptoms or []) if s != "fever"))
    return {"state": "abnormal" if abnormal else "normal", "fever": any(r.fever for r in rows),
            "temperature": latest, "worst": max(temps) if temps else None, "symptoms": symptoms,
            "reports": len(rows), "at": rows[-1].created_at}


async def quarantine_calendars(session: AsyncSession, quarantines: Iterable[Quarantine], now: datetime,
                               rules: BookRules) -> dict[int, list[dict[str, Any]]]:
    """For each quarantine, its days: `{"date", "day", "slots": [{"slot", "state", "temperature",
    "worst", "symptoms"}]}` with state normal / abnormal (a report; the worst of the slot, its latest
    reading), missed (no report `missed_after` past the reminder, or the reminder was marked missed),
    pending (not yet due, or still awaited) or released (after the release)."""
    qs = list(quarantines)
    if not qs:
        return {}
    rids = {q.resident_id for q in qs}
    first = min(q.start for q in qs)
    last = max(q.start + timedelta(days=q.days - 1) for q in qs)
    reports: dict[tuple[int, date, str], list[Any]] = {}
    for row in (await session.execute(
            select(CheckIn.id, CheckIn.resident_id, CheckIn.date, CheckIn.slot, CheckIn.status, CheckIn.fever,
                   CheckIn.temperature, CheckIn.symptoms, CheckIn.created_at)
            .where(CheckIn.resident_id.in_(rids), CheckIn.date >= first, CheckIn.date <= last))).all():
        slot = row.slot if row.slot != "day" else rules.slot_of(row.created_at.astimezone(rules.tz).time())
        reports.setdefault((row.resident_id, row.date, slot), []).append(row)
    missed = {(rid, d, slot) for rid, d, slot in (await session.execute(
        select(Reminder.resident_id, Reminder.date, Reminder.slot)
        .where(Reminder.resident_id.in_(rids), Reminder.date >= first, Reminder.date <= last,
               Reminder.missed_at.is_not(None)))).all()}
    out: dict[int, list[dict[str, Any]]] = {}
    for q in qs:
        days = []
        for i in range(q.days):
            d = q.start + timedelta(days=i)
            slots = []
            for name, t in rules.slots:
                due = datetime.combine(d, t, rules.tz)
                got = reports.get((q.resident_id, d, name))
                if got:
                    r = _reading(got)
                    cell = {"slot": name, "state": r["state"], "temperature": r["temperature"],
                            "worst": r["worst"], "symptoms": r["symptoms"]}
                elif q.released_at is not None and q.released_at <= due:
                    cell = {"slot": name, "state": "released"}
                elif (q.resident_id, d, name) in missed or due + rules.missed_after <= now:
                    cell = {"slot": name, "state": "missed"}
                else:
                    cell = {"slot": name, "state": "pending"}
                slots.append(cell)
            days.append({"date": d.isoformat(), "day": i + 1, "slots": slots})
        out[q.id] = days
    return out


# --- the 台账 workbook: one builder for `gridbot ledger --xlsx` and the page's 导出Excel -----------------


@dataclass
class LedgerBook:
    """Everything the workbook shows, for grids and a range of days: built by `ledger_book`, written
    by `write_ledger_xlsx`."""

    first: date
    last: date
    rules: BookRules
    ledgers: list[Ledger]  # one a day
    grids: dict[int, tuple[str, str]]  # id → (grid, community)
    households: list[dict[str, Any]]  # per household (building, unit, room, head, phone, people)
    days: dict[tuple[int, date], dict[str, Any]]  # (household id, date) → the day's reading
    abnormal: list[dict[str, Any]]
    escalations: list[dict[str, Any]]
    requests: list[dict[str, Any]]
    quarantines: list[dict[str, Any]]


LEVEL_NAMES = ("网格员", "网格长/医护", "街道")
ESC_STATUS = {"open": "待处理", "acked": "处理中", "closed": "已办结"}
REQ_STATUS = {"open": "待接单", "taken": "已接单", "done": "已完成", "cancelled": "已取消"}
SOURCE_NAMES = {"self": "本人", "proxy": "代报", "list": "接龙", "staff": "工作人员代报"}


async def ledger_book(session: AsyncSession, first: date, last: date, now: datetime, rules: BookRules, *,
                      grid_ids: Iterable[int] | None = None, grid_names: list[str] | None = None) -> LedgerBook:
    """The workbook's content for [first, last] and the grids named (or ids; neither: all grids);
    raises UnknownGrid for a name not stored."""
    if last < first:
        first, last = last, first
    q = select(Grid.id, Grid.name, Community.name).join(Community, Community.id == Grid.community_id)
    if grid_names is not None:
        q = q.where(Grid.name.in_(grid_names))
    elif grid_ids is not None:
        q = q.where(Grid.id.in_(list(grid_ids)))
    grids = {gid: (name, comm) for gid, name, comm in (await session.execute(q)).all()}
    if grid_names is not None:
        missing = sorted(set(grid_names) - {g for g, _ in grids.values()})
        if missing:
            raise UnknownGrid(f"没有这个网格: {'、'.join(missing)}")
    ids = list(grids)
    tz = rules.tz
    ledgers = []
    d = first
    while d <= last:
        ledgers.append(await compute_ledger(session, d, tz, grid_ids=ids))
        d += timedelta(days=1)
    start_utc, _ = _day_bounds(first, tz)
    _, end_utc = _day_bounds(last, tz)

    staff_names = dict((await session.execute(select(Staff.id, Staff.name))).all())

    # households and their people
    hrows = (await session.execute(
        select(Household.id, Building.grid_id, Building.name, Building.number, Household.unit, Household.room)
        .join(Building, Building.id == Household.building_id).where(Building.grid_id.in_(ids)))).all()
    people: dict[int, list[tuple[int, str, str | None]]] = {}
    for hid, rid, name, phone in (await session.execute(
            select(Resident.household_id, Resident.id, Resident.name, Resident.phone)
            .join(Household, Household.id == Resident.household_id)
            .join(Building, Building.id == Household.building_id)
            .where(Building.grid_id.in_(ids)).order_by(Resident.id))).all():
        people.setdefault(hid, []).append((rid, name, phone))
    names = {rid: name for rows in people.values() for rid, name, _ in rows}
    households = []
    labels: dict[int, str] = {}
    for hid, gid, bname, number, unit, room in hrows:
        members = people.get(hid, [])
        phone = next((p for _, _, p in members if p), "")
        labels[hid] = _label(number, unit, room)
        households.append({"id": hid, "grid": grids[gid][0], "grid_id": gid, "building": bname, "unit": unit,
                           "room": room, "label": labels[hid], "head": members[0][1] if members else "",
                           "phone": phone, "people": len(members)})
    households.sort(key=lambda h: (natural_key(h["grid"]), natural_key(h["label"])))

    def reporter(r: Any) -> str:
        if r.reporter_label:
            return r.reporter_label
        if r.source == "staff" and r.staff_id:
            return staff_names.get(r.staff_id, "工作人员")
        rid = r.reporter_id or r.resident_id
        return names.get(rid, "") if rid else SOURCE_NAMES.get(r.source, "")

    def person(r: Any) -> str:
        if r.resident_id:
            return names.get(r.resident_id, "")
        return r.person if r.person and not r.person.startswith("r") else ""

    by_day: dict[tuple[int, date], list[Any]] = {}
    abnormal = []
    for r in (await session.execute(
            select(CheckIn.id, CheckIn.household_id, CheckIn.resident_id, CheckIn.person, CheckIn.reporter_id,
                   CheckIn.date, CheckIn.slot, CheckIn.status, CheckIn.temperature, CheckIn.fever, CheckIn.symptoms,
                   CheckIn.text, CheckIn.source, CheckIn.reporter_label, CheckIn.staff_id, CheckIn.created_at)
            .join(Household, Household.id == CheckIn.household_id)
            .join(Building, Building.id == Household.building_id)
            .where(Building.grid_id.in_(ids), CheckIn.date >= first, CheckIn.date <= last)
            .order_by(CheckIn.created_at, CheckIn.id))).all():
        by_day.setdefault((r.household_id, r.date), []).append(r)
        if r.status == "abnormal":
            abnormal.append({"date": r.date, "at": r.created_at, "household_id": r.household_id,
                             "label": labels.get(r.household_id, ""), "person": person(r),
                             "temperature": r.temperature, "fever": r.fever,
                             "symptoms": [s for s in (r.symptoms or []) if s != "fever"],
                             "text": r.text, "reporter": reporter(r), "source": r.source})
    days = {}
    for key, rows in by_day.items():
        reading = _reading(rows)
        reading["reporter"] = reporter(sorted(rows, key=lambda r: (r.created_at, r.id))[-1])
        days[key] = reading

    # escalations live in the range: opened before its end, not closed before its start
    esc_rows = (await session.scalars(
        select(Escalation).where(Escalation.grid_id.in_(ids), Escalation.opened_at < end_utc,
                                 or_(Escalation.closed_at.is_(None), Escalation.closed_at >= start_utc))
        .order_by(Escalation.opened_at, Escalation.id))).unique().all()
    levels: dict[int, dict[int, datetime]] = {}
    if esc_rows:
        for key, at in (await session.execute(
                select(OutboundMessage.dedup_key, OutboundMessage.created_at)
                .where(OutboundMessage.escalation_id.in_([e.id for e in esc_rows]),
                       OutboundMessage.dedup_key.like("esc:%:L%")))).all():
            parts = (key or "").split(":")
            if len(parts) > 2 and parts[2][1:].isdigit():
                lv = levels.setdefault(int(parts[1]), {})
                n = int(parts[2][1:])
                lv[n] = min(lv.get(n, at), at)
    escalations = []
    for e in esc_rows:
        sent = sorted(levels.get(e.id, {}).items())
        timeline = [(e.opened_at, f"发起，通知{LEVEL_NAMES[min(sent[0][0] if sent else e.level, 2)]}")]
        for n, at in sorted(levels.get(e.id, {}).items())[1:]:
            timeline.append((at, f"上报至{LEVEL_NAMES[min(n, 2)]}"))
        if e.acked_at and e.acked_by and e.acked_at != e.closed_at:
            timeline.append((e.acked_at, f"{staff_names.get(e.acked_by, '')} 确认"))
        if e.closed_at:
            timeline.append((e.closed_at, f"{staff_names.get(e.closed_by or 0, '')} 办结" + (f"：{e.note}" if e.note else "")))
        escalations.append({
            "code": e.code, "kind": e.kind, "grid": grids.get(e.grid_id or 0, ("", ""))[0], "place": e.place,
            "person": names.get(e.resident_id or 0, "") or (e.subject or e.sender_name or ""),
            "summary": e.summary, "text": e.text, "temperature": e.temperature, "level": e.level,
            "status": e.status, "opened_at": e.opened_at, "acked_by": staff_names.get(e.acked_by or 0, ""),
            "acked_at": e.acked_at, "closed_by": staff_names.get(e.closed_by or 0, ""), "closed_at": e.closed_at,
            "note": e.note or "", "timeline": sorted(timeline, key=lambda t: t[0])})

    req_rows = (await session.scalars(
        select(ServiceRequest).where(ServiceRequest.grid_id.in_(ids), ServiceRequest.created_at < end_utc,
                                     or_(ServiceRequest.done_at.is_(None), ServiceRequest.done_at >= start_utc))
        .order_by(ServiceRequest.created_at, ServiceRequest.id))).unique().all()
    requests = [{"code": r.code, "category": r.category, "grid": grids[r.grid_id][0], "label": r.household.label,
                 "person": names.get(r.resident_id or 0, ""), "what": "、".join(r.items or []) or r.text,
                 "status": r.status, "assignee": staff_names.get(r.assignee_id or 0, ""), "created_at": r.created_at,
                 "taken_at": r.taken_at, "done_at": r.done_at, "note": r.note or ""} for r in req_rows]

    q_rows = (await session.scalars(
        select(Quarantine).join(Resident, Resident.id == Quarantine.resident_id)
        .join(Household, Household.id == Resident.household_id)
        .join(Building, Building.id == Household.building_id)
        .where(Building.grid_id.in_(ids), Quarantine.start <= last,
               or_(Quarantine.released_at.is_(None), Quarantine.released_at >= start_utc))
        .order_by(Quarantine.start, Quarantine.id))).unique().all()
    q_rows = [q for q in q_rows if q.start + timedelta(days=q.days - 1) >= first or q.released_at is None]
    calendars = await quarantine_calendars(session, q_rows, now, rules)
    quarantines = []
    for q in q_rows:
        hh = q.resident.household
        quarantines.append({"id": q.id, "grid": grids[hh.building.grid_id][0], "label": hh.label,
                            "name": q.resident.name, "phone": q.resident.phone or "", "start": q.start,
                            "days": q.days, "ends": q.start + timedelta(days=q.days - 1),
                            "released_at": q.released_at, "calendar": calendars.get(q.id, [])})
    return LedgerBook(first, last, rules, ledgers, grids, households, days, abnormal, escalations, requests,
                      quarantines)


def _when(at: datetime | None, tz: tzinfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if at else ""


def _temp(t: float | None) -> str:
    return f"{t:.1f}" if t is not None else ""


def reading_text(reading: dict[str, Any]) -> str:
    """"38.0 → 36.5": the worst of the day (or slot), then the latest reading when it differs."""
    worst, latest = reading.get("worst"), reading.get("temperature")
    if reading.get("state") == "abnormal" and worst is not None and latest is not None and worst - latest > 0.05:
        return f"{worst:.1f} → {latest:.1f}"
    return _temp(latest)


def write_ledger_xlsx(book: LedgerBook, path: Any) -> None:
    """The 台账 workbook (a path or a binary file): 汇总 (per grid and day), 住户台账 (per household
    and day: status, temperature, symptoms, who reported, when), 异常情况, 预警 (with the timeline and
    the closing note), 服务请求, 隔离人员 (each day's two readings), 未报户. Streams rows
    (openpyxl write-only), so a district's 300,000 households fit in memory."""
    import openpyxl
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font

    tz, rules = book.rules.tz, book.rules
    wb = openpyxl.Workbook(write_only=True)
    bold = Font(bold=True)

    def sheet(title: str, headers: list[str], widths: dict[str, float] | None = None):
        ws = wb.create_sheet(title)
        for col, w in (widths or {}).items():
            ws.column_dimensions[col].width = w
        ws.freeze_panes = "A2"
        row = []
        for h in headers:
            c = WriteOnlyCell(ws, value=h)
            c.font = bold
            row.append(c)
        ws.append(row)
        return ws

    def sym(codes: Iterable[str]) -> str:
        return "、".join(rules.symptom_names.get(c, c) for c in codes)

    ws = sheet("汇总", ["日期", "网格", "社区", "户数", "已报", "报告率", "平安", "异常", "未报", "发热（人）",
                      "隔离中（人）", "漏报（次）", "未结预警", "未完成服务"], {"B": 16, "C": 14})
    community = {name: comm for name, comm in book.grids.values()}
    for ledger in book.ledgers:
        for g in ledger["grids"]:
            rate = f"{g['reported'] * 100 // g['households']}%" if g["households"] else "—"
            ws.append([ledger["date"], g["grid"], community.get(g["grid"], ""), g["households"], g["reported"], rate,
                       g["safe"], g["abnormal"], len(g["unreported"]), g["fevers"], g["quarantined"],
                       g["missed_reports"], g["open_escalations"], g["open_requests"]])

    ws = sheet("住户台账", ["日期", "网格", "楼栋", "单元", "房号", "户主", "电话", "人数", "状态", "体温", "症状",
                        "报告人", "报告时间", "报告次数"], {"B": 16, "G": 14, "J": 14, "K": 16, "M": 17})
    d = book.first
    while d <= book.last:
        for h in book.households:
            r = book.days.get((h["id"], d))
            if r is None:
                status, temp, symptoms, who, at, n = "未报", "", "", "", "", 0
            else:
                status = "平安" if r["state"] == "normal" else ("发热" if r["fever"] else "异常")
                temp, symptoms, who, at, n = reading_text(r), sym(r["symptoms"]), r["reporter"], _when(r["at"], tz), \
                    r["reports"]
            ws.append([d.isoformat(), h["grid"], h["building"], h["unit"], h["room"], h["head"], h["phone"],
                       h["people"], status, temp, symptoms, who, at, n])
        d += timedelta(days=1)

    ws = sheet("异常情况", ["日期", "时间", "网格", "房号", "姓名", "体温", "发热", "症状", "原话", "报告人", "方式"],
               {"C": 16, "I": 40})
    grid_of = {h["id"]: h["grid"] for h in book.households}
    for a in book.abnormal:
        ws.append([a["date"].isoformat(), _when(a["at"], tz)[11:], grid_of.get(a["household_id"], ""), a["label"],
                   a["person"], _temp(a["temperature"]), "是" if a["fever"] else "", sym(a["symptoms"]), a["text"],
                   a["reporter"], SOURCE_NAMES.get(a["source"], a["source"])])

    ws = sheet("预警", ["编号", "类型", "网格", "房号", "对象", "情况", "原话", "体温", "级别", "状态", "发起时间",
                      "确认人", "确认时间", "办结人", "办结时间", "办结备注", "时间线"],
               {"C": 16, "F": 20, "G": 30, "K": 17, "M": 17, "O": 17, "P": 24, "Q": 44})
    wrap = Alignment(wrap_text=True, vertical="top")
    for e in book.escalations:
        timeline = "\n".join(f"{_when(at, tz)[5:]} {what}" for at, what in e["timeline"])
        cell = WriteOnlyCell(ws, value=timeline)
        cell.alignment = wrap
        ws.append([e["code"], rules.kind_names.get(e["kind"], e["kind"]), e["grid"], e["place"], e["person"],
                   e["summary"], e["text"], _temp(e["temperature"]), LEVEL_NAMES[min(e["level"], 2)],
                   ESC_STATUS.get(e["status"], e["status"]), _when(e["opened_at"], tz), e["acked_by"],
                   _when(e["acked_at"], tz), e["closed_by"], _when(e["closed_at"], tz), e["note"], cell])

    ws = sheet("服务请求", ["编号", "类别", "网格", "房号", "居民", "内容", "状态", "接单人", "提出时间", "接单时间",
                        "完成时间", "备注"], {"C": 16, "F": 30, "I": 17, "J": 17, "K": 17, "L": 24})
    for r in book.requests:
        ws.append([r["code"], rules.request_names.get(r["category"], r["category"]), r["grid"], r["label"],
                   r["person"], r["what"], REQ_STATUS.get(r["status"], r["status"]), r["assignee"],
                   _when(r["created_at"], tz), _when(r["taken_at"], tz), _when(r["done_at"], tz), r["note"]])

    longest = max((q["days"] for q in book.quarantines), default=0)
    slot_names = [rules.slot_names.get(name, name) for name, _ in rules.slots]
    ws = sheet("隔离人员", ["网格", "房号", "姓名", "电话", "开始", "天数", "结束", "状态", "解除时间"]
               + [f"第{i + 1}天{s}" for i in range(longest) for s in slot_names], {"A": 16, "D": 14, "I": 17})
    words = {"missed": "未报", "pending": "", "released": "—"}
    for q in book.quarantines:
        state = "已解除" if q["released_at"] else ("期满待解除" if q["ends"] < book.last else "隔离中")
        cells = []
        for day in q["calendar"]:
            for c in day["slots"]:
                if c["state"] in ("normal", "abnormal"):
                    text = reading_text(c) or "已报"
                    extra = sym(c.get("symptoms") or [])
                    cells.append(("异常 " if c["state"] == "abnormal" else "") + text + (f" {extra}" if extra else ""))
                else:
                    cells.append(words.get(c["state"], ""))
        ws.append([q["grid"], q["label"], q["name"], q["phone"], q["start"].isoformat(), q["days"],
                   q["ends"].isoformat(), state, _when(q["released_at"], tz), *cells])

    ws = sheet("未报户", ["日期", "网格", "房号"], {"B": 16})
    for ledger in book.ledgers:
        for g in ledger["grids"]:
            for label in g["unreported"]:
                ws.append([ledger["date"], g["grid"], label])
    wb.save(path)
