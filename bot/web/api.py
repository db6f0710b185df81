"""The JSON API behind the web page: ledger, escalations, requests, residents, quarantines, rates.

Every route takes the logged-in `Viewer` (bot/web/auth.py) and answers only within its scope
(handlers/people.py: the same rule as the chat commands). Scope is read from the database on each
request, so a roster change applies at once. The API shows health details to staff in scope (that
is its purpose); nothing here logs them.
"""

from __future__ import annotations

import asyncio
import io
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote

from aiohttp import web
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.ledger_cmd import book_rules
from bot.web.actions import csrf_of
from bot.web.common import (
    JSON_HEADERS,
    ApiError,
    Viewer,
    int_param,
    json_response,
    label_of,
    local_iso,
    mask_phone,
    parse_date,
)
from storage.ledger import (
    Ledger,
    compute_ledger,
    household_counts_where,
    ledger_book,
    quarantine_calendars,
    reported_per_day,
    write_ledger_xlsx,
)
from storage.models import Building, Escalation, Grid, Household, Quarantine, Resident, ServiceRequest, Staff
from storage.queries import natural_key, undeliverable_escalations

DEFAULT_LIMIT = 500
MAX_LIMIT = 5000
MAX_RATE_DAYS = 92
MAX_BOOK_DAYS = 31
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ESCALATION_STATUSES = ("open", "acked", "closed")
REQUEST_STATUSES = ("open", "taken", "done", "cancelled")


class Api:
    def __init__(self, runtime: Any):
        self.rt = runtime

    def now(self) -> datetime:
        return self.rt.clock.now().astimezone(self.rt.settings.tz)

    def today(self) -> date:
        return self.now().date()

    def local_iso(self, when: datetime | None) -> str | None:
        return local_iso(when, self.rt.settings.tz)

    async def grid_param(self, s: AsyncSession, viewer: Viewer, request: web.Request) -> int | None:
        name = request.query.get("grid", "").strip()
        if not name:
            return None
        gid = await s.scalar(select(Grid.id).where(Grid.name == name))
        if gid is None:
            raise ApiError(404, f"没有这个网格: {name}")
        if not viewer.scope.allows(gid):
            raise ApiError(403, "无权查看这个网格")
        return gid

    def date_param(self, request: web.Request) -> date:
        return parse_date(request.query.get("date", ""), self.today())

    # -- the API --

    async def me(self, request: web.Request, viewer: Viewer, s: AsyncSession) -> web.Response:
        return json_response({
            "user": viewer.uid, "name": viewer.name, "role": viewer.role,
            "district": viewer.scope.district,
            "grids": [{"grid": g["name"], "community": g["community"], "street": g["street"]}
                      for g in viewer.scope.grids.values()],
            "today": self.today().isoformat(),
            "now": self.local_iso(self.rt.clock.now()),
            "csrf": csrf_of(request),
            "unreachable": await self._undeliverable(viewer, s),
        })

    async def health(self, request: web.Request, viewer: Viewer, s: AsyncSession) -> web.Response:
        """What the page's red banner shows: escalations in scope whose alerts reached no one."""
        return json_response({"unreachable": await self._undeliverable(viewer, s)})

    async def _undeliverable(self, viewer: Viewer, s: AsyncSession) -> dict[str, Any]:
        ids = await undeliverable_escalations(s, viewer.scope.where(Escalation.grid_id))
        return {"count": len(ids), "escalations": [f"E{i}" for i in ids[:50]]}

    async def ledger(self, request: web.Request, viewer: Viewer, s: AsyncSession) -> web.Response:
        _, data, one_grid = await self._ledger(request, viewer, s)
        return json_response(data["grids"][0] if one_grid else data)

    async def _ledger(self, request: web.Request, viewer: Viewer, s: AsyncSession) -> tuple[date, Ledger, bool]:
        """The ledger of `?grid=` (checked against the viewer's scope), or of everything in scope;
        and whether it is one grid's."""
        day = self.date_param(request)
        gid = await self.grid_param(s, viewer, request)
        if gid is not None:
            ids: list[int] | None = [gid]
        elif viewer.scope.district:
            ids = None
        elif not viewer.scope.grids:
            return day, {"date": day.isoformat(), "grids": []}, False
        else:
            ids = list(viewer.scope.grids)
        return day, await compute_ledger(s, day, self.rt.settings.tz, grid_ids=ids), gid is not None

    def day_bounds(self, request: web.Request) -> tuple[datetime, datetime] | None:
        """[start, end) of `?date=` in the configured zone; None without one."""
        if not request.query.get("date", "").strip():
            return None
        start = datetime.combine(self.date_param(request), time(0), self.rt.settings.tz)
        return start, start + timedelta(days=1)

    async def ledger_xlsx(self, request: web.Request, viewer: Viewer, s: AsyncSession) -> web.Response:
        """The 台账 workbook (storage/ledger.py, as `gridbot ledger --xlsx`) of `?date=` (or of
        `?from=` to `?date=`, at most MAX_BOOK_DAYS), for `?grid=` or every grid in scope."""
        day = self.date_param(request)
        first = parse_date(request.query.get("from", ""), day)
        if first > day:
            first, day = day, first
        if (day - first).days >= MAX_BOOK_DAYS:
            raise ApiError(400, f"一次最多导出 {MAX_BOOK_DAYS} 天")
        gid = await self.grid_param(s, viewer, request)
        ids = [gid] if gid is not None else (None if viewer.scope.district else list(viewer.scope.grids))
        book = await ledger_book(s, first, day, self.rt.clock.now(), book_rules(self.rt.settings), grid_ids=ids)
        buf = io.BytesIO()
        await asyncio.to_thread(write_ledger_xlsx, book, buf)
        span = day.isoformat() if first == day else f"{first.isoformat()}_{day.isoformat()}"
        filename = f"ledger-{span}.xlsx"
        quoted = "台账-" + span + ".xlsx"
        return web.Response(body=buf.getvalue(), content_type=XLSX_TYPE, headers={
            **JSON_HEADERS,
            "Content-Disposition": f"attachment; filename=\"{filename}\"; filename*=UTF-8''{quote(quoted)}",
        })

    async def escalations(self, request: web.Request, viewer: Viewer, s: AsyncSession) -> web.Response:
        gid = await self.grid_param(s, viewer, request)
        status = request.query.get("status", "open")
        limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        cond = [viewer.scope.where(Escalation.grid_id, gid)]
        if status == "open":
            cond.append(Escalation.status != "closed")
        elif status in ESCALATION_STATUSES:
            cond.append(Escalation.status == status)
        elif status != "all":
            raise ApiError(400, "status 应为 open、acked、closed 或 all")
        bounds = self.day_bounds(request)
        if bounds is not None:  # live that day: opened before it ended, not closed before it began
            cond += [Escalation.opened_at < bounds[1],
                     or_(Escalation.closed_at.is_(None), Escalation.closed_at >= bounds[0])]
        total = await s.scalar(select(func.count(Escalation.id)).where(*cond))
        rows = (await s.execute(
            select(Escalation, Resident.name, Grid.name)
            .join(Grid, Grid.id == Escalation.grid_id)
            .outerjoin(Resident, Resident.id == Escalation.resident_id)
            .where(*cond).order_by(Escalation.opened_at.desc(), Escalation.id.desc()).limit(limit))).all()
        phones = await self._phones(s, [e for e, _, _ in rows])
        items = [{
            "code": e.code, "kind": e.kind, "grid": grid_name, "household": e.place,
            "phone": phones.get(e.id, ""),
            "resident": rname, "level": e.level, "status": e.status, "summary": e.summary, "text": e.text,
            "temperature": e.temperature, "opened_at": self.local_iso(e.opened_at),
            "deadline_at": self.local_iso(e.deadline_at), "acked_at": self.local_iso(e.acked_at),
            "closed_at": self.local_iso(e.closed_at), "note": e.note,
        } for e, rname, grid_name in rows]
        return json_response({"items": items, "total": total or 0, "now": self.local_iso(self.rt.clock.now())})

    async def _phones(self, s: AsyncSession, rows: list[Escalation]) -> dict[int, str]:
        """The number to call for each escalation (the person's own, else the household's first):
        the page's call link. Only escalations in the viewer's scope are ever passed here."""
        hids = {e.household_id for e in rows if e.household_id}
        if not hids:
            return {}
        by_household: dict[int, list[tuple[int, str]]] = {}
        for hid, rid, phone in (await s.execute(
                select(Resident.household_id, Resident.id, Resident.phone)
                .where(Resident.household_id.in_(hids), Resident.phone.is_not(None), Resident.phone != "")
                .order_by(Resident.id))).all():
            by_household.setdefault(hid, []).append((rid, phone))
        out = {}
        for e in rows:
            found = by_household.get(e.household_id or 0, [])
            own = [p for rid, p in found if rid == e.resident_id]
            if own or found:
                out[e.id] = (own or [found[0][1]])[0]
        return out

    async def requests(self, request: web.Request, viewer: Viewer, s: AsyncSession) -> web.Response:
        gid = await self.grid_param(s, viewer, request)
        status = request.query.get("status", "open")
        limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        cond = [viewer.scope.where(ServiceRequest.grid_id, gid)]
        if status == "open":
            cond.append(ServiceRequest.status.in_(("open", "taken")))
        elif status in REQUEST_STATUSES:
            cond.append(ServiceRequest.status == status)
        elif status != "all":
            raise ApiError(400, "status 应为 open、taken、done、cancelled 或 all")
        bounds = self.day_bounds(request)
        if bounds is not None:  # live that day
            cond += [ServiceRequest.created_at < bounds[1],
                     or_(ServiceRequest.done_at.is_(None), ServiceRequest.done_at >= bounds[0])]
        total = await s.scalar(select(func.count(ServiceRequest.id)).where(*cond))
        rows = (await s.execute(
            select(ServiceRequest, Resident.name, Staff.name, Grid.name)
            .join(Grid, Grid.id == ServiceRequest.grid_id)
            .outerjoin(Resident, Resident.id == ServiceRequest.resident_id)
            .outerjoin(Staff, Staff.id == ServiceRequest.assignee_id)
            .where(*cond).order_by(ServiceRequest.created_at.desc(), ServiceRequest.id.desc())
            .limit(limit))).all()
        items = [{
            "code": r.code, "category": r.category, "items": list(r.items or []), "text": r.text,
            "grid": grid_name, "household": r.household.label, "resident": rname, "status": r.status,
            "assignee": assignee, "created_at": self.local_iso(r.created_at),
            "taken_at": self.local_iso(r.taken_at), "done_at": self.local_iso(r.done_at), "note": r.note,
        } for r, rname, assignee, grid_name in rows]
        return json_response({"items": items, "total": total or 0, "now": self.local_iso(self.rt.clock.now())})

    async def residents(self, request: web.Request, viewer: Viewer, s: AsyncSession) -> web.Response:
        gid = await self.grid_param(s, viewer, request)
        limit = int_param(request, "limit", 2000, 1, MAX_LIMIT)
        offset = int_param(request, "offset", 0, 0, 10**9)
        cond = [viewer.scope.where(Building.grid_id, gid)]
        base = (select(Resident.name, Resident.category, Resident.phone, Resident.channel_user_id,
                       Building.number, Household.unit, Household.room, Grid.name)
                .join(Household, Household.id == Resident.household_id)
                .join(Building, Building.id == Household.building_id)
                .join(Grid, Grid.id == Building.grid_id).where(*cond))
        total = await s.scalar(select(func.count()).select_from(base.subquery()))
        rows = (await s.execute(base.order_by(Grid.name, Building.id, Household.unit, Household.room,
                                              Resident.id).limit(limit).offset(offset))).all()
        items = [{"grid": grid_name, "household": label_of(number, unit, room), "name": name,
                  "category": category, "phone": mask_phone(phone), "bound": uid is not None}
                 for name, category, phone, uid, number, unit, room, grid_name in rows]
        items.sort(key=lambda r: (natural_key(r["grid"]), natural_key(r["household"])))
        return json_response({"items": items, "total": total or 0, "offset": offset})

    async def quarantines(self, request: web.Request, viewer: Viewer, s: AsyncSession) -> web.Response:
        gid = await self.grid_param(s, viewer, request)
        status = request.query.get("status", "active")
        limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        cond = [viewer.scope.where(Building.grid_id, gid)]
        if status == "active":
            cond.append(Quarantine.released_at.is_(None))
        elif status != "all":
            raise ApiError(400, "status 应为 active 或 all")
        bounds = self.day_bounds(request)
        if bounds is not None:  # begun by that day and not released before it
            cond += [Quarantine.start <= self.date_param(request),
                     or_(Quarantine.released_at.is_(None), Quarantine.released_at >= bounds[0])]
        q = (select(Quarantine, Resident.name, Building.number, Household.unit, Household.room, Grid.name)
             .join(Resident, Resident.id == Quarantine.resident_id)
             .join(Household, Household.id == Resident.household_id)
             .join(Building, Building.id == Household.building_id)
             .join(Grid, Grid.id == Building.grid_id).where(*cond))
        total = await s.scalar(select(func.count()).select_from(q.subquery()))
        rows = (await s.execute(q.order_by(Quarantine.start.desc(), Quarantine.id.desc()).limit(limit))).all()
        today = self.today()
        calendars = await quarantine_calendars(s, [r[0] for r in rows], self.rt.clock.now(),
                                               book_rules(self.rt.settings))
        items = []
        for qu, name, number, unit, room, grid_name in rows:
            ends = qu.start + timedelta(days=qu.days - 1)
            day_n = qu.day_of(today)
            items.append({
                "id": qu.id, "grid": grid_name, "household": label_of(number, unit, room), "name": name,
                "start": qu.start.isoformat(), "days": qu.days, "ends": ends.isoformat(),
                "day": day_n, "state": ("released" if qu.released_at else "pending" if day_n < 1
                                        else "due_release" if today > ends else "active"),
                "released_at": self.local_iso(qu.released_at),
                "calendar": calendars.get(qu.id, []),
            })
        return json_response({"items": items, "total": total or 0, "today": today.isoformat()})

    async def rates(self, request: web.Request, viewer: Viewer, s: AsyncSession) -> web.Response:
        gid = await self.grid_param(s, viewer, request)
        days = int_param(request, "days", 28, 1, MAX_RATE_DAYS)
        end = self.date_param(request)
        first = end - timedelta(days=days - 1)
        in_scope = viewer.scope.where(Building.grid_id, gid)
        households = await household_counts_where(s, in_scope)
        reported = await reported_per_day(s, in_scope, first, end)
        items = []
        for i in range(days):
            d = first + timedelta(days=i)
            n = int(reported.get(d, 0))
            items.append({"date": d.isoformat(), "households": households, "reported": n,
                          "rate": round(n / households, 4) if households else None})
        return json_response({"items": items, "households": households})
