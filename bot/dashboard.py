"""The grid workers' web page (网格员工作台) and the JSON API behind it.

`setup_dashboard(app, runtime)` adds the routes to an existing aiohttp application:

    GET  /dashboard/                 one self-contained page (bot/dashboard_page.html)
    POST /api/login, /api/logout     a session cookie (HttpOnly, SameSite=Strict)
    GET  /api/me, /api/ledger, /api/ledger.xlsx, /api/escalations, /api/requests,
         /api/residents, /api/quarantines, /api/rates

Sessions live in the state store (in-process, or Redis when configured, so several processes share
them) under the SHA-256 of a random token, for `SESSION_TTL_S`; changing a password with
`gridbot passwd` ends the sessions opened with the old one. Failed logins are counted per user and
per client address in the state store's rate windows; after `MAX_FAILURES` within `FAILURE_WINDOW_S`
the answer is 429 with Retry-After, before any password is checked.

Scope (what a staff member may see): grid roles (网格员, 网格长, 志愿者, 医护, 民警) the grids of their
StaffScope rows; street roles (街道干部, 街道值班) also every grid of a street scope, and every grid
when a scope names neither grid nor street (全区). Scope is read from the database on each request,
so a roster change applies at once.

The API shows health details to staff in scope (that is its purpose); nothing here logs them.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import io
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from importlib import resources
from typing import Any
from urllib.parse import quote

from aiohttp import web
from sqlalchemy import ColumnElement, distinct, false, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from bot.state import LockTimeout
from storage.ledger import compute_ledger, write_ledger_xlsx
from storage.models import (
    AuditEvent,
    Building,
    CheckIn,
    Community,
    Escalation,
    Grid,
    Household,
    Quarantine,
    Resident,
    ServiceRequest,
    Staff,
    Street,
)
from storage.queries import natural_key
from storage.roster import STREET_ROLES
from storage.staffauth import hash_password, verify_password

log = logging.getLogger(__name__)

COOKIE = "gridbot_session"
SESSION_TTL_S = 12 * 3600
SESSION_PREFIX = "dash:session:"
MAX_FAILURES = 5
FAILURE_WINDOW_S = 15 * 60
LOCK_WAIT_S = 10.0
MAX_USER_LEN = 128
MAX_PASSWORD_LEN = 256
DEFAULT_LIMIT = 500
MAX_LIMIT = 5000
MAX_RATE_DAYS = 92
PAGE_FILE = "dashboard_page.html"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
JSON_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
ESCALATION_STATUSES = ("open", "acked", "closed")
REQUEST_STATUSES = ("open", "taken", "done", "cancelled")

_dummy_hash: str | None = None


# --- small pieces ----------------------------------------------------------------------------------


class ApiError(Exception):
    """An expected refusal: answered as JSON `{"error": message}` with this status."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps, headers={**JSON_HEADERS, **(headers or {})})


def mask_phone(phone: str | None) -> str:
    """138****5678: the first three and last four characters of a mobile number; less of shorter ones."""
    if not phone:
        return ""
    p = re.sub(r"\s+", "", phone)
    if len(p) >= 11:
        return p[:3] + "****" + p[-4:]
    if len(p) >= 7:
        return p[:2] + "****" + p[-2:]
    return "****"


def _token_key(token: str) -> str:
    # Only the token's hash is stored: a copy of the state store does not hand out live sessions.
    return SESSION_PREFIX + hashlib.sha256(token.encode("utf-8")).hexdigest()


def _fingerprint(hashes: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(hashes)).encode("utf-8")).hexdigest()


def _get_dummy_hash() -> str:
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hash_password(secrets.token_hex(16))
    return _dummy_hash


def _label(number: str, unit: str, room: str) -> str:
    return f"{number}-{unit}-{room}" if unit else f"{number}-{room}"


def _client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ApiError(400, f"{name} 应为整数") from exc
    return max(lo, min(hi, value))


@dataclass
class Scope:
    """The grids one staff member may see; `district` means every grid (全区)."""

    district: bool
    grids: dict[int, dict[str, str]] = field(default_factory=dict)  # id → {name, community, street}

    def allows(self, grid_id: int) -> bool:
        return self.district or grid_id in self.grids

    def where(self, col: Any, grid_id: int | None = None) -> ColumnElement[bool]:
        if grid_id is not None:
            return col == grid_id
        if self.district:
            return true()
        return col.in_(list(self.grids)) if self.grids else false()

    def names(self) -> list[str]:
        return [g["name"] for g in self.grids.values()]


@dataclass
class Viewer:
    """The logged-in staff member: one person, possibly one Staff row per channel."""

    uid: str
    staff: list[Staff]
    scope: Scope

    @property
    def name(self) -> str:
        return self.staff[0].name

    @property
    def role(self) -> str:
        return "、".join(dict.fromkeys(st.role for st in self.staff))


async def resolve_scope(session: AsyncSession, staff: list[Staff]) -> Scope:
    grid_ids: set[int] = set()
    street_ids: set[int] = set()
    district = False
    for st in staff:
        street_role = st.role in STREET_ROLES
        for sc in st.scopes:
            if sc.grid_id is not None:
                grid_ids.add(sc.grid_id)
            elif not street_role:
                continue  # a grid role never reaches beyond its grids, whatever a row says
            elif sc.street_id is not None:
                street_ids.add(sc.street_id)
            else:
                district = True
    q = (select(Grid.id, Grid.name, Community.name, Street.name)
         .join(Community, Community.id == Grid.community_id).join(Street, Street.id == Community.street_id))
    if not district:
        if not grid_ids and not street_ids:
            return Scope(False, {})
        q = q.where(or_(Grid.id.in_(grid_ids), Community.street_id.in_(street_ids)))
    rows = sorted((await session.execute(q)).all(), key=lambda r: natural_key(r[1]))
    return Scope(district, {gid: {"name": name, "community": comm, "street": street}
                            for gid, name, comm, street in rows})


# --- the routes ------------------------------------------------------------------------------------


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
AuthedHandler = Callable[[web.Request, Viewer, AsyncSession], Awaitable[web.StreamResponse]]


def _answers_errors(fn: Callable[..., Awaitable[web.StreamResponse]]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Turns an ApiError into its JSON answer; works on functions and methods alike."""

    @functools.wraps(fn)
    async def wrapper(*args: Any) -> web.StreamResponse:
        try:
            return await fn(*args)
        except ApiError as exc:
            return json_response({"error": exc.message}, status=exc.status, headers=exc.headers)

    return wrapper


class Dashboard:
    def __init__(self, runtime: Any):
        self.rt = runtime
        self.page = resources.files("bot").joinpath(PAGE_FILE).read_text("utf-8")
        self.page_headers = {
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
            "Content-Security-Policy": _page_csp(self.page),
        }

    # -- helpers --

    def now(self) -> datetime:
        return self.rt.clock.now().astimezone(self.rt.settings.tz)

    def today(self) -> date:
        return self.now().date()

    def local_iso(self, when: datetime | None) -> str | None:
        return None if when is None else when.astimezone(self.rt.settings.tz).isoformat(timespec="seconds")

    def authed(self, fn: AuthedHandler) -> Handler:
        @_answers_errors
        @functools.wraps(fn)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            token = request.cookies.get(COOKIE)
            if not token or len(token) > 200:
                raise ApiError(401, "请先登录")
            raw = await self.rt.state.get(_token_key(token))
            if raw is None:
                raise ApiError(401, "请先登录")
            try:
                sess = json.loads(raw)
                staff_ids = [int(i) for i in sess["staff"]]
                uid, fp = str(sess["uid"]), str(sess["fp"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ApiError(401, "请先登录") from exc
            async with self.rt.db.session() as s:
                staff = list((await s.scalars(select(Staff).where(Staff.id.in_(staff_ids))
                                              .order_by(Staff.id))).all())
                hashes = [st.password_hash for st in staff if st.password_hash]
                if (len(staff) != len(staff_ids) or len(hashes) != len(staff)
                        or not hmac.compare_digest(_fingerprint(hashes), fp)):
                    # The password was changed or removed, or the staff row is gone: the session ends.
                    await self.rt.state.delete(_token_key(token))
                    raise ApiError(401, "请先登录")
                viewer = Viewer(uid, staff, await resolve_scope(s, staff))
                return await fn(request, viewer, s)

        return wrapper

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
        raw = request.query.get("date", "").strip()
        if not raw:
            return self.today()
        try:
            return date.fromisoformat(raw)
        except ValueError as exc:
            raise ApiError(400, "日期格式应为 YYYY-MM-DD") from exc

    async def audit(self, action: str, staff_id: int | None, user: str, detail: dict[str, Any]) -> None:
        async with self.rt.db.session() as s:
            s.add(AuditEvent(at=self.now(), staff_id=staff_id, action=action, target=user[:100], detail=detail))

    # -- the page --

    async def page_handler(self, request: web.Request) -> web.Response:
        return web.Response(text=self.page, content_type="text/html", charset="utf-8",
                            headers=self.page_headers)

    async def redirect_handler(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/dashboard/")

    # -- login / logout --

    @_answers_errors
    async def login(self, request: web.Request) -> web.Response:
        # JSON only: a cross-site form cannot send it without a CORS preflight we never grant.
        if request.content_type != "application/json":
            raise ApiError(415, "请以 JSON 提交")
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "请求格式错误") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "请求格式错误")
        user, password = body.get("user"), body.get("password")
        if (not isinstance(user, str) or not isinstance(password, str) or not user.strip() or not password
                or len(user) > MAX_USER_LEN or len(password) > MAX_PASSWORD_LEN):
            raise ApiError(400, "请填写账号和密码")
        user = user.strip()
        ip = _client_ip(request)
        keys = ["dash:login-fail:user:" + hashlib.sha256(user.encode()).hexdigest()[:32],
                "dash:login-fail:ip:" + ip]
        state = self.rt.state
        try:
            # One attempt at a time per user, so that parallel guesses cannot all pass the check
            # below before the first failure is counted.
            async with state.lock("dash:login:" + keys[0], ttl=30.0, wait=LOCK_WAIT_S):
                # Cost 0 under limit-1: refused exactly when MAX_FAILURES are already in the window.
                wait = await state.acquire([(k, MAX_FAILURES - 1, FAILURE_WINDOW_S, 0) for k in keys])
                if wait > 0:
                    retry = max(1, int(wait + 0.999))
                    raise ApiError(429, f"尝试次数过多，请 {(retry + 59) // 60} 分钟后再试",
                                   {"Retry-After": str(retry)})
                async with self.rt.db.session() as s:
                    staff = list((await s.scalars(select(Staff).where(Staff.channel_user_id == user)
                                                  .order_by(Staff.id))).all())
                hashes = sorted({st.password_hash for st in staff if st.password_hash})
                matched: list[Staff] = []
                if not hashes:
                    # Same work as a real check, so that timing does not tell which users exist.
                    await asyncio.to_thread(verify_password, _get_dummy_hash(), password)
                for h in hashes:
                    if await asyncio.to_thread(verify_password, h, password):
                        matched += [st for st in staff if st.password_hash == h]
                if not matched:
                    await state.acquire([(k, 1_000_000, FAILURE_WINDOW_S, 1) for k in keys])
                    reason = "password" if hashes else ("no_password" if staff else "unknown_user")
                    await self.audit("login_failed", staff[0].id if staff else None, user,
                                     {"ip": ip, "reason": reason})
                    raise ApiError(401, "账号或密码错误")
        except LockTimeout as exc:  # too many attempts queued for this user
            raise ApiError(429, "尝试次数过多，请稍后再试", {"Retry-After": "60"}) from exc
        token = secrets.token_urlsafe(32)
        session = {"uid": user, "staff": [st.id for st in matched],
                   "fp": _fingerprint([st.password_hash for st in matched if st.password_hash]),
                   "at": self.now().isoformat(timespec="seconds")}
        await state.set(_token_key(token), json.dumps(session), ttl=SESSION_TTL_S)
        await self.audit("login", matched[0].id, user, {"ip": ip})
        resp = json_response({"ok": True, "name": matched[0].name,
                              "role": "、".join(dict.fromkeys(st.role for st in matched))})
        resp.set_cookie(COOKIE, token, max_age=SESSION_TTL_S, path="/", httponly=True, samesite="Strict",
                        secure=request.secure)
        return resp

    @_answers_errors
    async def logout(self, request: web.Request) -> web.Response:
        token = request.cookies.get(COOKIE)
        if token and len(token) <= 200:
            await self.rt.state.delete(_token_key(token))
        resp = json_response({"ok": True})
        resp.del_cookie(COOKIE, path="/")
        return resp

    # -- the API --

    async def me(self, request: web.Request, viewer: Viewer, s: AsyncSession) -> web.Response:
        return json_response({
            "user": viewer.uid, "name": viewer.name, "role": viewer.role,
            "district": viewer.scope.district,
            "grids": [{"grid": g["name"], "community": g["community"], "street": g["street"]}
                      for g in viewer.scope.grids.values()],
            "today": self.today().isoformat(),
        })

    async def ledger(self, request: web.Request, viewer: Viewer, s: AsyncSession) -> web.Response:
        _, data, one_grid = await self._ledger(request, viewer, s)
        return json_response(data["grids"][0] if one_grid else data)

    async def _ledger(self, request: web.Request, viewer: Viewer, s: AsyncSession) -> tuple[date, dict, bool]:
        """The ledger of `?grid=` (checked against the viewer's scope), or of everything in scope;
        and whether it is one grid's."""
        day = self.date_param(request)
        gid = await self.grid_param(s, viewer, request)
        if gid is not None:
            names: list[str] | None = [await s.scalar(select(Grid.name).where(Grid.id == gid))]
        elif viewer.scope.district:
            names = None
        elif not viewer.scope.grids:
            return day, {"date": day.isoformat(), "grids": []}, False
        else:
            names = viewer.scope.names()
        return day, await compute_ledger(s, day, self.rt.settings, names, now=self.now()), gid is not None

    async def ledger_xlsx(self, request: web.Request, viewer: Viewer, s: AsyncSession) -> web.Response:
        day, data, _ = await self._ledger(request, viewer, s)
        buf = io.BytesIO()
        await asyncio.to_thread(write_ledger_xlsx, data, buf)  # type: ignore[arg-type] - openpyxl takes a file
        filename = f"ledger-{day.isoformat()}.xlsx"
        quoted = "台账-" + day.isoformat() + ".xlsx"
        return web.Response(body=buf.getvalue(), content_type=XLSX_TYPE, headers={
            **JSON_HEADERS,
            "Content-Disposition": f"attachment; filename=\"{filename}\"; filename*=UTF-8''{quote(quoted)}",
        })

    async def escalations(self, request: web.Request, viewer: Viewer, s: AsyncSession) -> web.Response:
        gid = await self.grid_param(s, viewer, request)
        status = request.query.get("status", "open")
        limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        cond = [viewer.scope.where(Escalation.grid_id, gid)]
        if status == "open":
            cond.append(Escalation.status != "closed")
        elif status in ESCALATION_STATUSES:
            cond.append(Escalation.status == status)
        elif status != "all":
            raise ApiError(400, "status 应为 open、acked、closed 或 all")
        total = await s.scalar(select(func.count(Escalation.id)).where(*cond))
        rows = (await s.execute(
            select(Escalation, Resident.name, Grid.name)
            .join(Grid, Grid.id == Escalation.grid_id)
            .outerjoin(Resident, Resident.id == Escalation.resident_id)
            .where(*cond).order_by(Escalation.opened_at.desc(), Escalation.id.desc()).limit(limit))).all()
        items = [{
            "code": e.code, "kind": e.kind, "grid": grid_name, "household": e.household.label,
            "resident": rname, "level": e.level, "status": e.status, "summary": e.summary, "text": e.text,
            "temperature": e.temperature, "opened_at": self.local_iso(e.opened_at),
            "deadline_at": self.local_iso(e.deadline_at), "acked_at": self.local_iso(e.acked_at),
            "closed_at": self.local_iso(e.closed_at), "note": e.note,
        } for e, rname, grid_name in rows]
        return json_response({"items": items, "total": total or 0})

    async def requests(self, request: web.Request, viewer: Viewer, s: AsyncSession) -> web.Response:
        gid = await self.grid_param(s, viewer, request)
        status = request.query.get("status", "open")
        limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        cond = [viewer.scope.where(ServiceRequest.grid_id, gid)]
        if status == "open":
            cond.append(ServiceRequest.status.in_(("open", "taken")))
        elif status in REQUEST_STATUSES:
            cond.append(ServiceRequest.status == status)
        elif status != "all":
            raise ApiError(400, "status 应为 open、taken、done、cancelled 或 all")
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
        return json_response({"items": items, "total": total or 0})

    async def residents(self, request: web.Request, viewer: Viewer, s: AsyncSession) -> web.Response:
        gid = await self.grid_param(s, viewer, request)
        limit = _int_param(request, "limit", 2000, 1, MAX_LIMIT)
        offset = _int_param(request, "offset", 0, 0, 10**9)
        cond = [viewer.scope.where(Building.grid_id, gid)]
        base = (select(Resident.name, Resident.category, Resident.phone, Resident.channel_user_id,
                       Building.number, Household.unit, Household.room, Grid.name)
                .join(Household, Household.id == Resident.household_id)
                .join(Building, Building.id == Household.building_id)
                .join(Grid, Grid.id == Building.grid_id).where(*cond))
        total = await s.scalar(select(func.count()).select_from(base.subquery()))
        rows = (await s.execute(base.order_by(Grid.name, Building.id, Household.unit, Household.room,
                                              Resident.id).limit(limit).offset(offset))).all()
        items = [{"grid": grid_name, "household": _label(number, unit, room), "name": name,
                  "category": category, "phone": mask_phone(phone), "bound": uid is not None}
                 for name, category, phone, uid, number, unit, room, grid_name in rows]
        items.sort(key=lambda r: (natural_key(r["grid"]), natural_key(r["household"])))
        return json_response({"items": items, "total": total or 0, "offset": offset})

    async def quarantines(self, request: web.Request, viewer: Viewer, s: AsyncSession) -> web.Response:
        gid = await self.grid_param(s, viewer, request)
        status = request.query.get("status", "active")
        limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        cond = [viewer.scope.where(Building.grid_id, gid)]
        if status == "active":
            cond.append(Quarantine.released_at.is_(None))
        elif status != "all":
            raise ApiError(400, "status 应为 active 或 all")
        q = (select(Quarantine, Resident.name, Building.number, Household.unit, Household.room, Grid.name)
             .join(Resident, Resident.id == Quarantine.resident_id)
             .join(Household, Household.id == Resident.household_id)
             .join(Building, Building.id == Household.building_id)
             .join(Grid, Grid.id == Building.grid_id).where(*cond))
        total = await s.scalar(select(func.count()).select_from(q.subquery()))
        rows = (await s.execute(q.order_by(Quarantine.start.desc(), Quarantine.id.desc()).limit(limit))).all()
        today = self.today()
        items = []
        for qu, name, number, unit, room, grid_name in rows:
            ends = qu.start + timedelta(days=qu.days - 1)
            day_n = qu.day_of(today)
            items.append({
                "grid": grid_name, "household": _label(number, unit, room), "name": name,
                "start": qu.start.isoformat(), "days": qu.days, "ends": ends.isoformat(),
                "day": day_n, "state": ("released" if qu.released_at else "pending" if day_n < 1
                                        else "due_release" if today > ends else "active"),
                "released_at": self.local_iso(qu.released_at),
            })
        return json_response({"items": items, "total": total or 0, "today": today.isoformat()})

    async def rates(self, request: web.Request, viewer: Viewer, s: AsyncSession) -> web.Response:
        gid = await self.grid_param(s, viewer, request)
        days = _int_param(request, "days", 28, 1, MAX_RATE_DAYS)
        end = self.date_param(request)
        first = end - timedelta(days=days - 1)
        in_scope = viewer.scope.where(Building.grid_id, gid)
        households = await s.scalar(select(func.count(Household.id))
                                    .join(Building, Building.id == Household.building_id).where(in_scope)) or 0
        reported = dict((await s.execute(
            select(CheckIn.date, func.count(distinct(CheckIn.household_id)))
            .join(Household, Household.id == CheckIn.household_id)
            .join(Building, Building.id == Household.building_id)
            .where(in_scope, CheckIn.date >= first, CheckIn.date <= end).group_by(CheckIn.date))).all())
        items = []
        for i in range(days):
            d = first + timedelta(days=i)
            n = int(reported.get(d, 0))
            items.append({"date": d.isoformat(), "households": households, "reported": n,
                          "rate": round(n / households, 4) if households else None})
        return json_response({"items": items, "households": households})


def _page_csp(page: str) -> str:
    """A Content-Security-Policy that allows exactly the page's own inline script and style."""

    def hashes(tag: str) -> str:
        found = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.S)
        return " ".join("'sha256-" + base64.b64encode(hashlib.sha256(b.encode("utf-8")).digest()).decode() + "'"
                        for b in found) or "'none'"

    return (f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
            "connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
            "frame-ancestors 'none'")


def setup_dashboard(app: web.Application, runtime: Any) -> None:
    """Adds the dashboard page and the /api routes to `app` (called by bot.app.build_app)."""
    d = Dashboard(runtime)
    app.router.add_get("/dashboard", d.redirect_handler)
    app.router.add_get("/dashboard/", d.page_handler)
    app.router.add_post("/api/login", d.login)
    app.router.add_post("/api/logout", d.logout)
    app.router.add_get("/api/me", d.authed(d.me))
    app.router.add_get("/api/ledger", d.authed(d.ledger))
    app.router.add_get("/api/ledger.xlsx", d.authed(d.ledger_xlsx))
    app.router.add_get("/api/escalations", d.authed(d.escalations))
    app.router.add_get("/api/requests", d.authed(d.requests))
    app.router.add_get("/api/residents", d.authed(d.residents))
    app.router.add_get("/api/quarantines", d.authed(d.quarantines))
    app.router.add_get("/api/rates", d.authed(d.rates))

