"""What the grid workers do from the page: the staff chat commands, as JSON routes.

    POST /api/escalations/{code}/ack            收到 E23
    POST /api/escalations/{code}/close {"note"} 完成 E23 备注
    POST /api/requests/{code}/take              接单 R12
    POST /api/requests/{code}/done {"note"}     完成 R12 备注
    POST /api/quarantines {"household", "name", "start"}   隔离 3-2-501 王芳 2-10
    POST /api/quarantines/{id}/release          解除 3-2-501 王芳
    POST /api/checkins {"household", "text"}    代报 3-2-501 36.5 正常

Each route calls the chat command's own function (handlers/escalation.py, requests.py, quarantine.py,
checkin.py):
the same checks, the same audit record and the same messages to the resident and the alert chain.
Those messages go to the outbox in the same transaction as the change (bot/outbox.py `enqueue`), and
the sender is woken after the commit. The staff member's own confirmation, which the chat would send
back to them, is the JSON answer (`reply`) instead of a chat message.

Every route needs the header `X-CSRF-Token` with the `csrf` of `GET /api/me` (403 without it; the
token is derived from the session cookie, which page scripts of another site can neither read nor
send: SameSite=Strict). An unknown code is 404, one outside the staff member's scope 403 (the one
rule, handlers/people.py `scope_of`); an action already done (a second 收到) changes nothing, sends
nothing, and answers 200 with `"changed": false`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.dispatch import Context, NotFound, OutOfScope, UserError
from bot.model import Inbound, Outbound
from bot.outbox import enqueue
from bot.web.auth import COOKIE
from bot.web.common import ApiError, Viewer, json_response, parse_date
from handlers import checkin as checkins
from handlers import escalation as escalations
from handlers import quarantine as quarantines
from handlers import requests as requests_
from handlers.common import private_channel
from handlers.people import contacts, scope_of
from storage.models import Escalation, Quarantine, ServiceRequest, Staff

CSRF_HEADER = "X-CSRF-Token"
MAX_NOTE = 500
MAX_REPORT = 300
MAX_BODY = 16 * 1024

Call = Callable[[AsyncSession, Staff, datetime], Awaitable[list[Outbound]]]


def csrf_of(request: web.Request) -> str:
    """The token the page sends with every change: a keyed hash of the session cookie."""
    token = request.cookies.get(COOKIE, "")
    return hmac.new(token.encode("utf-8"), b"gridbot-csrf", hashlib.sha256).hexdigest()


def check_csrf(request: web.Request) -> None:
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent or not hmac.compare_digest(sent.encode("utf-8"), csrf_of(request).encode("utf-8")):
        raise ApiError(403, "页面已过期，请刷新后再试")


async def body_of(request: web.Request) -> dict[str, Any]:
    """The JSON body, or {} when there is none."""
    if not request.can_read_body:
        return {}
    if request.content_type != "application/json":
        raise ApiError(415, "请以 JSON 提交")
    if (request.content_length or 0) > MAX_BODY:
        raise ApiError(413, "内容过长")
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "请求格式错误") from exc
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, "请求格式错误")
    return body


def text_field(body: dict[str, Any], name: str, limit: int, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ApiError(400, f"请填写 {name}")
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{name} 应为文字")
    value = value.strip()
    if len(value) > limit:
        raise ApiError(400, f"{name} 不能超过 {limit} 字")
    return value


class Actions:
    def __init__(self, runtime: Any):
        self.rt = runtime

    async def _act(self, request: web.Request, viewer: Viewer, call: Call,
                   state: Callable[[AsyncSession], Awaitable[Any]] | None) -> web.Response:
        """Runs `call` as the viewer (the first of their staff rows whose scope allows it) in a
        transaction of its own, with its messages in the outbox; answers what changed."""
        now = self.rt.clock.now()
        async with self.rt.db.session() as s:
            before = await state(s) if state else None
            staff = list((await s.scalars(select(Staff).where(Staff.id.in_([st.id for st in viewer.staff]))
                                          .order_by(Staff.id))).all())
            refused: UserError | None = None
            for st in staff:
                try:
                    out = await call(s, st, now)
                    break
                except OutOfScope as exc:  # raised before any change: the next row may cover it
                    refused = exc
                except NotFound as exc:
                    raise ApiError(404, str(exc)) from exc
                except UserError as exc:
                    raise ApiError(400, str(exc)) from exc
            else:
                raise ApiError(403, str(refused) if refused else "不在您负责的范围内")
            mine = {c for st in staff for c in contacts(st)}
            to_me = [m for m in out if m.to_user and (m.channel, m.to_user) in mine]
            rows = await enqueue(s, [m for m in out if m not in to_me], now)
            after = await state(s) if state else True
        sender = getattr(self.rt, "sender", None)
        if rows and sender is not None:
            sender.wake()
        return json_response({"ok": True, "changed": after != before, "reply": "\n".join(m.text for m in to_me),
                              "sent": len(rows), **(after if isinstance(after, dict) else {})})

    # -- escalations ----------------------------------------------------------------------------

    def _escalation_state(self, code: str) -> Callable[[AsyncSession], Awaitable[dict[str, Any] | None]]:
        async def state(s: AsyncSession) -> dict[str, Any] | None:
            esc = await s.get(Escalation, _number(code, "E"))
            if esc is None:
                raise ApiError(404, f"没有找到 {code}")
            return {"code": esc.code, "status": esc.status, "note": esc.note}

        return state

    async def ack_escalation(self, request: web.Request, viewer: Viewer, _: AsyncSession) -> web.Response:
        check_csrf(request)
        code = request.match_info["code"]
        settings = self.rt.settings
        return await self._act(request, viewer, lambda s, st, now: escalations.ack_escalation(
            s, settings, now, st, code), self._escalation_state(code))

    async def close_escalation(self, request: web.Request, viewer: Viewer, _: AsyncSession) -> web.Response:
        check_csrf(request)
        code = request.match_info["code"]
        note = text_field(await body_of(request), "note", MAX_NOTE)
        settings = self.rt.settings
        return await self._act(request, viewer, lambda s, st, now: escalations.close_escalation(
            s, settings, now, st, code, note), self._escalation_state(code))

    # -- requests -------------------------------------------------------------------------------

    def _request_state(self, code: str) -> Callable[[AsyncSession], Awaitable[dict[str, Any] | None]]:
        async def state(s: AsyncSession) -> dict[str, Any] | None:
            req = await s.get(ServiceRequest, _number(code, "R"))
            if req is None:
                raise ApiError(404, f"没有找到 {code}")
            return {"code": req.code, "status": req.status, "assignee_id": req.assignee_id, "note": req.note}

        return state

    async def take_request(self, request: web.Request, viewer: Viewer, _: AsyncSession) -> web.Response:
        check_csrf(request)
        code = request.match_info["code"]
        settings = self.rt.settings
        return await self._act(request, viewer, lambda s, st, now: requests_.take_request(
            s, settings, now, st, code), self._request_state(code))

    async def finish_request(self, request: web.Request, viewer: Viewer, _: AsyncSession) -> web.Response:
        check_csrf(request)
        code = request.match_info["code"]
        note = text_field(await body_of(request), "note", MAX_NOTE)
        settings = self.rt.settings
        return await self._act(request, viewer, lambda s, st, now: requests_.finish_request(
            s, settings, now, st, code, note), self._request_state(code))

    # -- quarantines ----------------------------------------------------------------------------

    async def start_quarantine(self, request: web.Request, viewer: Viewer, _: AsyncSession) -> web.Response:
        check_csrf(request)
        body = await body_of(request)
        household = text_field(body, "household", 40, required=True) or ""
        name = text_field(body, "name", 60)
        raw_start = text_field(body, "start", 10)
        settings = self.rt.settings
        start = parse_date(raw_start or "", self.rt.clock.now().astimezone(settings.tz).date())

        async def call(s: AsyncSession, st: Staff, now: datetime) -> list[Outbound]:
            hh = await quarantines.household_in_scope(s, st, household)
            return await quarantines.start_quarantine(s, settings, now, st, hh, name, start)

        return await self._act(request, viewer, call, None)

    async def release_quarantine(self, request: web.Request, viewer: Viewer, _: AsyncSession) -> web.Response:
        check_csrf(request)
        try:
            qid = int(request.match_info["id"])
        except ValueError as exc:
            raise ApiError(404, "没有这条隔离记录") from exc
        settings = self.rt.settings

        async def call(s: AsyncSession, st: Staff, now: datetime) -> list[Outbound]:
            q = await s.get(Quarantine, qid)
            if q is None:
                raise NotFound("没有这条隔离记录")
            hh = q.resident.household
            if not (await scope_of(s, st)).allows(hh.building.grid_id):
                raise OutOfScope(f"{hh.label} 不在您负责的网格内。")
            return await quarantines.release_household(s, settings, now, st, hh, q.resident.name)

        async def state(s: AsyncSession) -> dict[str, Any]:
            q = await s.get(Quarantine, qid)
            if q is None:
                raise ApiError(404, "没有这条隔离记录")
            return {"id": q.id, "released": q.released_at is not None}

        return await self._act(request, viewer, call, state)

    # -- 代报 ------------------------------------------------------------------------------------

    async def staff_report(self, request: web.Request, viewer: Viewer, _: AsyncSession) -> web.Response:
        """代报 for a household after a phone call or a visit: the chat command's function, with the
        page's words as the message a worker would have typed."""
        check_csrf(request)
        body = await body_of(request)
        household = text_field(body, "household", 40, required=True) or ""
        words = text_field(body, "text", MAX_REPORT, required=True) or ""
        rt = self.rt

        async def call(s: AsyncSession, st: Staff, now: datetime) -> list[Outbound]:
            hh = await quarantines.household_in_scope(s, st, household)  # the scope rule: 404 / 403
            inbound = Inbound(channel=private_channel(st.channel), msg_id=f"web-{now.timestamp()}", sender_id=st.channel_user_id,
                              text=f"代报 {hh.label} {words}", sent_at=now)
            ctx = Context(session=s, settings=rt.settings, clock=rt.clock, inbound=inbound, staff=st,
                          state=rt.state)
            return await checkins.report_for_household(ctx, st, hh.label, words)

        return await self._act(request, viewer, call, None)


def _number(code: str, prefix: str) -> int:
    raw = code.strip().upper()
    if raw.startswith(prefix):
        raw = raw[1:]
    if not raw.isdigit() or len(raw) > 12:
        raise ApiError(404, f"没有找到 {code}")
    return int(raw)
