"""Writing to the outbox, inside the caller's transaction, so facts and messages commit together."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.model import Outbound
from storage.models import OutboundMessage

# The dedup key of an escalation's alert to a staff member (handlers/escalation.py `_notify`):
# "esc:{escalation id}:{what}:s{staff id}", then ">{channel}" for each channel it was re-sent on.
ALERT_KEY = re.compile(r"^esc:(\d+):.*:s(\d+)(?:>[a-z]+)*$")


# THE order of the outbox (lower first; then by id): an alert before a reply to a person, a reply
# before a confirmation, reminder, prompt or nudge, those before a group broadcast. A kind not named
# here is a reply (1).
PRIORITY: dict[str, int] = {
    "escalation": 0,
    "reply": 1, "request": 1, "registration": 1,
    "confirmation": 2, "reminder": 2, "prompt": 2, "nudge": 2, "missed": 2, "ledger": 2,
    "notice": 3, "progress": 3,
}


# Kinds where a second copy of a message still waiting for the same recipient adds nothing (the
# "已记录" of a resident who reported twice while the outbox was backed up): not queued again.
COALESCED = frozenset({"confirmation"})


async def _already_pending(session: AsyncSession, m: Outbound) -> bool:
    t = OutboundMessage
    q = select(t.id).where(t.status == "pending", t.to_user == m.to_user, t.to_chat == m.to_chat,
                           t.channel == m.channel, t.kind == m.kind, t.text == m.text).limit(1)
    if m.to_user is None:
        q = q.where(t.to_user.is_(None))
    return await session.scalar(q) is not None


def priority_of(kind: str) -> int:
    return PRIORITY.get(kind, 1)


def alert_of(kind: str, dedup_key: str | None) -> tuple[int, int] | None:
    """(escalation id, staff id) of an escalation alert's outbox row; None for any other row."""
    m = ALERT_KEY.match(dedup_key or "") if kind == "escalation" else None
    return (int(m.group(1)), int(m.group(2))) if m else None


async def enqueue(
    session: AsyncSession,
    messages: Iterable[Outbound],
    now: datetime,
    inbound_id: int | None = None,
    notice_id: int | None = None,
) -> list[OutboundMessage]:
    """Adds the messages to the outbox; one whose dedup_key is already there is skipped.

    Returns the rows added. The caller's transaction commits them with the facts that caused them.
    """
    messages = list(messages)
    keys = [m.dedup_key for m in messages if m.dedup_key]
    seen: set[str] = set()
    if keys:
        seen = set((await session.scalars(select(OutboundMessage.dedup_key).where(
            OutboundMessage.dedup_key.in_(keys)))).all())
    rows = []
    for m in messages:
        if m.kind in COALESCED and await _already_pending(session, m):
            continue
        alert = alert_of(m.kind, m.dedup_key)
        if m.dedup_key:
            if m.dedup_key in seen:
                continue
            seen.add(m.dedup_key)
        rows.append(OutboundMessage(
            channel=m.channel, to_user=m.to_user, to_chat=m.to_chat, text=m.text, kind=m.kind,
            dedup_key=m.dedup_key, reply_to=m.reply_to, inbound_id=inbound_id, notice_id=m.notice_id or notice_id,
            escalation_id=alert[0] if alert else None, priority=priority_of(m.kind),
            status="pending", attempts=0, created_at=now, next_attempt_at=now,
        ))
    session.add_all(rows)
    await session.flush()
    return rows
