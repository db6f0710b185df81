"""Small shared reads: who is responsible for a grid or street, which grid a household is in,
which household an address means, and the natural order of room labels."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Building, Grid, Household, Staff, StaffScope

_NUM = re.compile(r"(\d+)")


def natural_key(label: str) -> tuple:
    """"3-2-502" before "3-10-101", "10号楼" after "9号楼": digit runs compare as numbers."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in _NUM.split(label) if p)


async def staff_for_grid(session: AsyncSession, grid_id: int, roles: Sequence[str]) -> list[Staff]:
    """Staff with a scope on this grid and one of these roles, oldest first."""
    rows = await session.scalars(
        select(Staff).join(StaffScope, StaffScope.staff_id == Staff.id)
        .where(StaffScope.grid_id == grid_id, Staff.role.in_(roles)).distinct().order_by(Staff.id))
    return list(rows.all())


async def staff_for_street(session: AsyncSession, street_id: int, roles: Sequence[str]) -> list[Staff]:
    """Staff with a scope on this street (not on one of its grids) and one of these roles."""
    rows = await session.scalars(
        select(Staff).join(StaffScope, StaffScope.staff_id == Staff.id)
        .where(StaffScope.street_id == street_id, Staff.role.in_(roles)).distinct().order_by(Staff.id))
    return list(rows.all())


async def grid_of_household(session: AsyncSession, household_id: int) -> Grid:
    grid = await session.scalar(
        select(Grid).join(Building, Building.grid_id == Grid.id)
        .join(Household, Household.building_id == Building.id).where(Household.id == household_id))
    if grid is None:
        raise LookupError(f"household {household_id} not found")
    return grid


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


async def find_household(session: AsyncSession, label: str, near: Building | None = None) -> Household | None:
    """The one household an address means, or None.

    Several communities may each have a "3号楼"; with `near` (the building of the group the
    message came from) the one in the same community wins. Without a way to choose between two
    candidates the answer is None: binding a resident to the wrong household is worse than asking.
    """
    rows = await households_at(session, label)
    if len(rows) <= 1:
        return rows[0] if rows else None
    if near is not None:
        for h in rows:
            if h.building_id == near.id:
                return h
        community_id = await session.scalar(select(Grid.community_id).where(Grid.id == near.grid_id))
        same = [h for h in rows if h.building.grid.community_id == community_id]
        if len(same) == 1:
            return same[0]
    return None
