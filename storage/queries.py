"""Small shared reads and writes: which household an address means, the natural order of room
labels, inserts that ignore conflicts on both databases, the marks jobs leave when they ran, and the
escalations whose alerts could not be delivered.
Who is responsible for what is decided in handlers/people.py."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Building, Escalation, Household, JobRun, OutboundMessage

_NUM = re.compile(r"(\d+)")


def natural_key(label: str) -> tuple:
    """"3-2-502" before "3-10-101", "10号楼" after "9号楼": digit runs compare as numbers."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in _NUM.split(label) if p)


def split_label(label: str) -> tuple[str, str, str] | None:
    """An address as (building number, unit, room); the room is required, the others may be "".

    "3-2-501" → ("3", "2", "501"); a courtyard house "5-12" or "5--12" (the parser's form) →
    ("5", "", "12"); "-2-501" (no building: the group's own building is meant) → ("", "2", "501").
    """
    parts = [p.strip() for p in label.strip().split("-")]
    if len(parts) == 3:
        number, unit, room = parts
    elif len(parts) == 2:
        (number, room), unit = parts, ""
    else:
        return None
    if not room.isdigit() or not (number or unit):
        return None
    return number, unit, room


async def households_at(session: AsyncSession, address: str, *, building: Building | None = None,
                        grid_ids: set[int] | None = None) -> list[Household]:
    """Every household an address may mean.

    `building` (the group the message came from) supplies a missing building number and rules out
    any other building; `grid_ids` limits the answer to a staff member's grids.
    """
    parts = split_label(address)
    if parts is None:
        return []
    number, unit, room = parts
    number = str(int(number)) if number.isdigit() else number
    q = select(Household).join(Building, Household.building_id == Building.id).where(Household.room == room)
    if building is not None:
        if number and number != building.number:
            return []
        q = q.where(Household.building_id == building.id)
    elif number:
        q = q.where(Building.number == number)
    else:
        return []
    if unit:
        q = q.where(Household.unit == unit)
    if grid_ids is not None:
        q = q.where(Building.grid_id.in_(grid_ids))
    rows = list((await session.scalars(q.order_by(Household.id))).unique().all())
    if not unit:
        # "5-12" names a courtyard house; prefer it over a unit-less guess inside a block.
        rows = [h for h in rows if h.unit == ""] or rows
    return rows


def insert_for(session: AsyncSession, table: Any) -> Any:
    """INSERT with ON CONFLICT support on both SQLite and PostgreSQL."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


async def record_run(session: AsyncSession, job: str, period: str, now: datetime, detail: dict) -> None:
    """Marks that a job ran for a period (a fire time, a day); a second mark is ignored."""
    await session.execute(insert_for(session, JobRun.__table__).values(
        job=job, period=period, ran_at=now, detail=detail).on_conflict_do_nothing(index_elements=["job", "period"]))


async def has_run(session: AsyncSession, job: str, period: str) -> bool:
    return await session.scalar(select(JobRun.id).where(JobRun.job == job, JobRun.period == period)) is not None


async def undeliverable_escalations(session: AsyncSession, where: Any = None) -> list[int]:
    """Ids of the escalations not yet closed that have an alert no channel of its recipient could
    deliver (bot/sender.py marks such an outbox row "unreachable"); `where` narrows the
    escalations (a viewer's scope)."""
    q = (select(Escalation.id).join(OutboundMessage, OutboundMessage.escalation_id == Escalation.id)
         .where(OutboundMessage.status == "unreachable", Escalation.status != "closed")
         .distinct().order_by(Escalation.id))
    if where is not None:
        q = q.where(where)
    return list((await session.scalars(q)).all())
