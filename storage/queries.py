"""Small shared reads: who is responsible for a grid or street, which grid a household is in,
which household an address means, and the natural order of room labels."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Building, Grid, Household, Staff, StaffScope

_NUM = re.compile(r"(\d+)")


def natural_key(label: str) -> tuple:
    """"3-2-502" before "3-10-101", "10号楼" after "9号楼": digit runs compare as numbers."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in _NUM.split(label) if p)


async def staff_for_grid(session: AsyncSession, grid_id: int, roles: tuple[str, ...]) -> list[Staff]:
    """Staff with a scope on this grid and one of these roles, oldest first."""
    rows = await session.scalars(
        select(Staff).join(StaffScope, StaffScope.staff_id == Staff.id)
        .where(StaffScope.grid_id == grid_id, Staff.role.in_(roles)).distinct().order_by(Staff.id))
    return list(rows.all())


async def staff_for_street(session: AsyncSession, street_id: int, roles: tuple[str, ...]) -> list[Staff]:
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
    """"3-2-501" → ("3", "2", "501"); a courtyard "5-12" → ("5", "", "12"); else None."""
    parts = [p.strip() for p in label.strip().split("-")]
    if len(parts) == 3 and all(parts):
        return parts[0], parts[1], parts[2]
    if len(parts) == 2 and all(parts):
        return parts[0], "", parts[1]
    return None


async def find_household(session: AsyncSession, label: str, near: Building | None = None) -> Household | None:
    """The household an address means: building by `number`, then unit and room.

    Several communities may each have a "3号楼"; with `near` (the building of the group the
    message came from) the one in the same community wins. Without a way to choose between two
    candidates the answer is None: binding a resident to the wrong household is worse than asking.
    """
    parts = split_label(label)
    if parts is None:
        return None
    number, unit, room = parts
    number = str(int(number)) if number.isdigit() else number
    rows = (await session.scalars(
        select(Household).join(Building, Building.id == Household.building_id)
        .where(Building.number == number, Household.unit == unit, Household.room == room)
        .order_by(Household.id))).all()
    if len(rows) <= 1:
        return rows[0] if rows else None
    if near is not None:
        for h in rows:
            if h.building_id == near.id:
                return h
        community_id = near.grid.community_id if near.grid is not None else None
        if community_id is None:
            community_id = await session.scalar(select(Grid.community_id).where(Grid.id == near.grid_id))
        same = [h for h in rows if h.building.grid.community_id == community_id]
        if len(same) == 1:
            return same[0]
    return None
