"""`gridbot staff add|list|disable`: staff without re-importing the roster, and `gridbot outbox`.

    gridbot staff add --name 张伟 --role 网格员 --id zhangwei [--channel wecom、bridge] [--phone P]
                      [--grid 成丰一网格 ...] [--street 天桥东街街道]
    gridbot staff list [--all]
    gridbot staff disable ID
    gridbot outbox [--failed] [--to ID] [--limit N]

`add` creates the staff member, or updates and re-enables the one with that 微信ID on that channel
(their scope is replaced by the --grid / --street given). `disable` ends their scope, password and
sessions, so no alert or page reaches them; the row stays for the records that name them, and
`add` with the same id enables them again.

`outbox` shows what the bot sent to whom, newest first: time, status, kind, channel, recipient,
attempts, the last error, and the first 20 characters of the text, masked, except for alerts
(escalations and missed reports), whose health details are for the recipient alone.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select

PREVIEW = 20
HIDDEN_KINDS = ("escalation", "missed")


def _split(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").replace(",", "、").replace("，", "、").split("、") if p.strip()]


async def _open(settings: Any):
    from storage.db import Database
    from storage.roster import ensure_schema

    db = Database(settings.database_url)
    await ensure_schema(db)
    return db


async def staff_add(settings: Any, *, name: str, role: str, uid: str, channel: str = "wecom",
                    phone: str | None = None, grids: list[str] | None = None,
                    streets: list[str] | None = None) -> tuple[int, str]:
    """(exit code, message)."""
    from storage.models import CHANNELS, ROLES, STREET_ROLES, AuditEvent, Grid, Staff, StaffScope, Street

    if role not in ROLES:
        return 2, f"角色应为：{'、'.join(ROLES)}"
    channels = _split(channel) or ["wecom"]
    ids = _split(uid)
    bad = [c for c in channels if c not in CHANNELS]
    if bad:
        return 2, f"渠道应为：{'、'.join(CHANNELS)}（不是 {'、'.join(bad)}）"
    if len(ids) not in (1, len(channels)):
        return 2, "微信ID：一个（各渠道共用），或每个渠道一个，顺序相同"
    ids = ids * len(channels) if len(ids) == 1 else ids
    if streets and role not in STREET_ROLES:
        return 2, f"--street 只用于 {'、'.join(STREET_ROLES)}"
    db = await _open(settings)
    try:
        async with db.session() as s:
            grid_ids = []
            for g in grids or []:
                gid = await s.scalar(select(Grid.id).where(Grid.name == g))
                if gid is None:
                    return 1, f"没有名为 {g!r} 的网格"
                grid_ids.append(gid)
            street_ids = []
            for st_name in streets or []:
                sid = await s.scalar(select(Street.id).where(Street.name == st_name))
                if sid is None:
                    return 1, f"没有名为 {st_name!r} 的街道"
                street_ids.append(sid)
            staff = await s.scalar(select(Staff).where(Staff.channel == channels[0], Staff.channel_user_id == ids[0]))
            created = staff is None
            if staff is None:
                staff = Staff(name=name, role=role, channel=channels[0], channel_user_id=ids[0])
                s.add(staff)
            staff.name, staff.role, staff.phone, staff.disabled_at = name, role, phone or staff.phone, None
            staff.alt_channels = [{"channel": c, "id": i} for c, i in zip(channels[1:], ids[1:], strict=True)]
            await s.flush()
            await s.execute(delete(StaffScope).where(StaffScope.staff_id == staff.id))
            rows = [StaffScope(staff_id=staff.id, grid_id=g) for g in grid_ids]
            rows += [StaffScope(staff_id=staff.id, street_id=sid) for sid in street_ids]
            if not rows and role in STREET_ROLES and not grids:
                rows = [StaffScope(staff_id=staff.id)]  # no --grid/--street: the whole district
            s.add_all(rows)
            s.add(AuditEvent(at=datetime.now(settings.tz), staff_id=staff.id,
                             action="staff.add" if created else "staff.update", target=ids[0][:100],
                             detail={"by": "cli", "role": role, "grids": grids or [], "streets": streets or []}))
            scope = "、".join((grids or []) + (streets or [])) or ("全区" if rows else "（无）")
            verb = "已添加" if created else "已更新"
            return 0, f"{verb}工作人员 {staff.id}：{role}{name}（{'、'.join(channels)}: {'、'.join(dict.fromkeys(ids))}），负责 {scope}"
    finally:
        await db.dispose()


async def staff_list(settings: Any, *, everyone: bool = False) -> list[str]:
    from storage.models import Grid, Staff, StaffScope, Street

    db = await _open(settings)
    try:
        async with db.session() as s:
            staff = (await s.scalars(select(Staff).order_by(Staff.id))).all()
            scopes = (await s.execute(select(StaffScope.staff_id, Grid.name, Street.name)
                                      .outerjoin(Grid, Grid.id == StaffScope.grid_id)
                                      .outerjoin(Street, Street.id == StaffScope.street_id))).all()
    finally:
        await db.dispose()
    where: dict[int, list[str]] = {}
    for sid, grid, street in scopes:
        where.setdefault(sid, []).append(grid or street or "全区")
    lines = [f"{'id':>4}  {'微信ID':<14} {'姓名':<6} {'角色':<6} {'渠道':<16} {'密码':<4} {'状态':<4} 负责"]
    for st in staff:
        if st.disabled_at is not None and not everyone:
            continue
        chans = "、".join(dict.fromkeys(c for c, _ in st.contacts))
        state = "停用" if st.disabled_at is not None else "在用"
        lines.append(f"{st.id:>4}  {st.channel_user_id:<16} {st.name:<6} {st.role:<6} {chans:<16} "
                     f"{'有' if st.password_hash else '无':<4} {state:<4} {'、'.join(where.get(st.id, [])) or '-'}")
    return lines


async def staff_disable(settings: Any, who: str) -> tuple[int, str]:
    from storage.models import AuditEvent, Staff, StaffScope

    db = await _open(settings)
    try:
        async with db.session() as s:
            q = select(Staff).where(Staff.channel_user_id == who)
            if who.isdigit():
                q = select(Staff).where(or_(Staff.id == int(who), Staff.channel_user_id == who))
            staff = (await s.scalars(q.order_by(Staff.id))).all()
            if not staff:
                return 1, f"没有微信ID或编号为 {who!r} 的工作人员"
            now = datetime.now(settings.tz)
            for st in staff:
                gone = [(sc.grid_id, sc.street_id) for sc in st.scopes]
                await s.execute(delete(StaffScope).where(StaffScope.staff_id == st.id))
                st.password_hash, st.disabled_at = None, st.disabled_at or now
                s.add(AuditEvent(at=now, staff_id=st.id, action="staff.disable", target=st.channel_user_id[:100],
                                 detail={"by": "cli", "scopes": gone}))
            names = "、".join(f"{st.role}{st.name}（{st.id}）" for st in staff)
            return 0, f"已停用 {names}：不再收到预警，不能登录网页"
    finally:
        await db.dispose()


def cli_staff(args: Any) -> int:
    from bot.config import load_settings
    from storage.roster import SchemaMissing

    settings = load_settings()
    try:
        if args.staff_command == "add":
            code, msg = asyncio.run(staff_add(settings, name=args.name, role=args.role, uid=args.id,
                                              channel=args.channel, phone=args.phone, grids=args.grid,
                                              streets=args.street))
        elif args.staff_command == "disable":
            code, msg = asyncio.run(staff_disable(settings, args.who))
        else:
            print("\n".join(asyncio.run(staff_list(settings, everyone=args.all))))
            return 0
    except SchemaMissing as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(msg, file=sys.stdout if code == 0 else sys.stderr)
    return code


# --- gridbot outbox ---------------------------------------------------------------------------------


def preview(kind: str, text: str) -> str:
    from storage.privacy import redact

    if kind in HIDDEN_KINDS:
        return "（预警内容只给收件人）"
    one_line = " ".join(text.split())
    return redact(one_line[:PREVIEW]) + ("…" if len(one_line) > PREVIEW else "")


async def outbox_lines(settings: Any, *, failed: bool = False, to: str | None = None, limit: int = 50) -> list[str]:
    from storage.models import OutboundMessage

    db = await _open(settings)
    try:
        async with db.session() as s:
            q = select(OutboundMessage).order_by(OutboundMessage.id.desc()).limit(max(1, limit))
            if failed:
                q = q.where(OutboundMessage.status.in_(("failed", "unreachable")))
            if to:
                q = q.where(or_(OutboundMessage.to_user == to, OutboundMessage.to_chat == to))
            rows = (await s.scalars(q)).all()
    finally:
        await db.dispose()
    tz = settings.tz
    lines = []
    for m in rows:
        when = (m.sent_at or m.created_at).astimezone(tz).strftime("%m-%d %H:%M")
        who = m.to_user or (f"群 {m.to_chat}" if m.to_chat else "-")
        err = f"  错误: {' '.join((m.last_error or '').split())[:80]}" if m.last_error and m.status != "sent" else ""
        lines.append(f"{m.id:>6} {when} {m.status:<11} {m.kind:<14} {m.channel:<7} {who:<20} "
                     f"x{m.attempts} {preview(m.kind, m.text)}{err}")
    if not lines:
        lines.append("（没有）")
    return lines


def cli_outbox(args: Any) -> int:
    from bot.config import load_settings
    from storage.roster import SchemaMissing

    settings = load_settings()
    try:
        lines = asyncio.run(outbox_lines(settings, failed=args.failed, to=args.to, limit=args.limit))
    except SchemaMissing as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0
