"""Notices (通知) that staff send through the bot to building groups: one building, a grid, or all.

A notice is the staff member's own words, sent on purpose, so it does not go through the
health-detail guard of `handlers.common.group_message`; it is recorded (Notice row, AuditEvent) so
that what went to which groups can be looked up.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.dispatch import Context, OutOfScope, Router, UserError
from bot.model import Outbound
from handlers import people, texts
from handlers.common import audit, staff_command
from storage.models import Building, Grid, Notice, Staff
from storage.queries import natural_key

log = logging.getLogger(__name__)
commands = Router("notice-commands")

ALL = ("全部", "所有", "全体")
MY_GRID = ("网格", "本网格", "我的网格")


async def buildings_for_scope(session: AsyncSession, staff: Staff, scope: str) -> list[Building]:
    """The groups a scope names, within what the staff member covers."""
    grid_ids = (await people.scope_of(session, staff)).grid_ids
    if not grid_ids:
        return []
    rows = list((await session.scalars(select(Building).where(Building.grid_id.in_(grid_ids),
                                                               Building.chat_id.is_not(None)))).unique().all())
    scope = scope.strip()
    if scope in ALL or scope in MY_GRID:
        chosen = rows
    else:
        grid = await session.scalar(select(Grid).where(Grid.name == scope))
        if grid is not None and grid.id in grid_ids:
            chosen = [b for b in rows if b.grid_id == grid.id]
        else:
            m = re.fullmatch(r"(\d{1,3})\s*(?:号楼|号院|栋|幢|楼|院|号)?", scope)
            chosen = [b for b in rows if b.name == scope] or (
                [b for b in rows if b.number == m.group(1)] if m else [])
    return sorted(chosen, key=lambda b: natural_key(b.name))


async def _names_a_place(session: AsyncSession, scope: str) -> bool:
    """Whether a scope names a grid or building that exists (outside the staff member's grids)."""
    scope = scope.strip()
    m = re.fullmatch(r"(\d{1,3})\s*(?:号楼|号院|栋|幢|楼|院|号)?", scope)
    q = select(Building.id).where(or_(Building.name == scope, Building.number == m.group(1)) if m
                                  else Building.name == scope)
    return (await session.scalar(select(Grid.id).where(Grid.name == scope)) is not None
            or await session.scalar(q.limit(1)) is not None)


async def send_notice(session: AsyncSession, settings: Settings, now: datetime, staff: Staff, scope: str,
                      text: str) -> tuple[Notice, list[Outbound]]:
    """Records a notice and returns one group message per building (kind "notice").

    Each message carries `notice_id`, so what went to which groups can be looked up.
    """
    text = text.strip()
    if not text:
        raise UserError(texts.NOTICE_EMPTY)
    buildings = await buildings_for_scope(session, staff, scope)
    if not buildings:
        if await _names_a_place(session, scope):
            raise OutOfScope(texts.OUT_OF_SCOPE_OF.format(what=scope))
        raise UserError(texts.NOTICE_NO_GROUPS.format(scope=scope))
    notice = Notice(staff_id=staff.id, scope=scope[:100], text=text, created_at=now)
    session.add(notice)
    await session.flush()
    body = f"【通知】{text}\n—— {staff.role}{staff.name}"
    out = [Outbound(channel=b.channel, to_chat=b.chat_id, text=body, kind="notice",
                    dedup_key=f"notice:{notice.id}:b{b.id}", notice_id=notice.id) for b in buildings]
    audit(session, now, staff, "notice.send", scope[:100], notice_id=notice.id, groups=len(out))
    log.info("notice %s by staff %s to %s groups", notice.id, staff.id, len(out))
    return notice, out


@commands.message(staff_command("通知"))
async def on_notice(ctx: Context) -> list[Outbound]:
    """通知 3号楼|网格|全部 内容."""
    # The notice keeps its own line breaks: take it from the raw text, not the folded command.
    m = re.match(r"^\s*通知\s*[:：]?\s*(\S+)\s+(.+)$", ctx.text, re.S)
    if not m:
        raise UserError(texts.NOTICE_USAGE)
    scope, text = unicodedata.normalize("NFKC", m.group(1)), m.group(2).strip()
    _note, outs = await send_notice(ctx.session, ctx.settings, ctx.now, ctx.staff, scope, text)
    return [*outs, ctx.reply(texts.NOTICE_OK.format(n=len(outs)))]
