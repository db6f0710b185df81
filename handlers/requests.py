"""Service requests (代购、买药、垃圾清运、帮办): a ticket R12 the grid worker and volunteers can take.

The resident hears each step privately: registered, taken (by whom), done.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.dispatch import Context, NotFound, OutOfScope, Router
from bot.model import Outbound
from handlers import people, texts
from handlers.common import (
    audit,
    compact,
    staff_command,
    to_person,
    to_sender,
)
from storage.models import Household, Resident, Role, ServiceRequest, Staff

log = logging.getLogger(__name__)
router = Router("requests")
commands = Router("request-commands")

CATEGORIES = ("groceries", "medicine", "garbage", "other")


def _items_text(req: ServiceRequest) -> str:
    return "、".join(req.items) if req.items else req.text


async def create_request(session: AsyncSession, settings: Settings, now: datetime, *, household: Household,
                         resident: Resident | None, category: str, items: list[str], text: str,
                         inbound_id: int | None = None) -> tuple[ServiceRequest, list[Outbound]]:
    """Opens a ticket and tells the grid's workers and volunteers privately."""
    if category not in CATEGORIES:
        category = "other"
    req = ServiceRequest(category=category, items=list(items), text=text[:2000], household_id=household.id,
                         household=household, resident_id=resident.id if resident else None,
                         grid_id=household.building.grid_id, status="open", inbound_id=inbound_id,
                         created_at=now)
    session.add(req)
    await session.flush()
    staff = await people.staff_of_grid(session, req.grid_id, (Role.WORKER, Role.VOLUNTEER))
    msg = texts.REQUEST_TO_STAFF.format(cat=texts.REQUEST_ZH[category], code=req.code, label=household.label,
                                        name=resident.name if resident else "", items=_items_text(req),
                                        text=text)
    log.info("request %s opened: category=%s household=%s", req.code, category, household.id)
    return req, compact(to_person(s, msg, kind="request", dedup_key=f"req:{req.id}:new:s{s.id}") for s in staff)


async def request_from_message(ctx: Context, household: Household) -> list[Outbound]:
    """The request part of a resident's message: the ticket, the staff alerts, the private receipt."""
    p = ctx.parsed
    items = list(getattr(p, "items", None) or [])
    req, out = await create_request(ctx.session, ctx.settings, ctx.now, household=household, resident=ctx.resident,
                                    category=p.request, items=items, text=ctx.text, inbound_id=ctx.inbound_id)
    out.append(to_sender(ctx, texts.REQUEST_CREATED.format(cat=texts.REQUEST_ZH[req.category], code=req.code,
                                                           items=_items_text(req))))
    return out


def _is_request(ctx: Context) -> bool:
    p = ctx.parsed
    return bool(ctx.resident is not None and p is not None and p.request)


@router.message(_is_request)
async def on_request(ctx: Context) -> list[Outbound]:
    """A request alone, or the request part of a report (handlers.checkin passes it on)."""
    household, problem = await people.message_household(ctx)
    if household is None:
        return [to_sender(ctx, problem)]
    return await request_from_message(ctx, household)


# --- staff actions ------------------------------------------------------------------------------------


async def _get_for_staff(session: AsyncSession, staff: Staff, code: str) -> ServiceRequest:
    try:
        req_id = int(code.upper().lstrip("R"))
    except ValueError:
        raise NotFound(texts.NOT_FOUND_CODE.format(code=code)) from None
    req = await session.get(ServiceRequest, req_id)
    if req is None:
        raise NotFound(texts.NOT_FOUND_CODE.format(code=f"R{req_id}"))
    if not (await people.scope_of(session, staff)).allows(req.grid_id):
        raise OutOfScope(texts.OUT_OF_SCOPE.format(code=req.code))
    return req


async def take_request(session: AsyncSession, settings: Settings, now: datetime, staff: Staff,
                       code: str) -> list[Outbound]:
    """接单 R12."""
    req = await _get_for_staff(session, staff, code)
    if req.status in ("done", "cancelled"):
        return compact([to_person(staff, texts.REQ_ALREADY_DONE.format(code=req.code))])
    if req.status == "taken" and req.assignee_id != staff.id:
        other = await session.get(Staff, req.assignee_id) if req.assignee_id else None
        return compact([to_person(staff, texts.REQ_ALREADY_TAKEN.format(code=req.code,
                                                                         name=other.name if other else ""))])
    req.status, req.assignee_id, req.taken_at = "taken", staff.id, now
    audit(session, now, staff, "request.take", req.code, household=req.household.label)
    out = [to_person(staff, texts.REQ_TAKEN_OK.format(code=req.code, label=req.household.label,
                                                      items=_items_text(req)))]
    resident = await session.get(Resident, req.resident_id) if req.resident_id else None
    if resident is not None:
        out.append(to_person(resident, texts.REQUEST_TAKEN.format(
            cat=texts.REQUEST_ZH[req.category], code=req.code, role=staff.role, name=staff.name),
            dedup_key=f"req:{req.id}:taken"))
    return compact(out)


async def finish_request(session: AsyncSession, settings: Settings, now: datetime, staff: Staff, code: str,
                         note: str | None = None) -> list[Outbound]:
    """完成 R12 [备注]."""
    req = await _get_for_staff(session, staff, code)
    if req.status in ("done", "cancelled"):
        return compact([to_person(staff, texts.REQ_ALREADY_DONE.format(code=req.code))])
    if req.assignee_id is None:
        req.assignee_id, req.taken_at = staff.id, now
    req.status, req.done_at, req.note = "done", now, note or None
    audit(session, now, staff, "request.done", req.code, household=req.household.label)
    out = [to_person(staff, texts.REQ_DONE_OK.format(code=req.code))]
    resident = await session.get(Resident, req.resident_id) if req.resident_id else None
    if resident is not None:
        out.append(to_person(resident, texts.REQUEST_DONE.format(
            cat=texts.REQUEST_ZH[req.category], code=req.code, note=note or ""), dedup_key=f"req:{req.id}:done"))
    return compact(out)


@commands.message(staff_command("接单", code="R"))
async def on_take(ctx: Context) -> list[Outbound]:
    return await take_request(ctx.session, ctx.settings, ctx.now, ctx.staff, ctx.data["code"])


@commands.message(staff_command("完成", code="R"))
async def on_done(ctx: Context) -> list[Outbound]:
    return await finish_request(ctx.session, ctx.settings, ctx.now, ctx.staff, ctx.data["code"], ctx.data["note"])
