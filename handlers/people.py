"""Who: the one place that decides who may see what, who hears of an alarm, and whom a message is about.

- `scope_of`: the grids a staff member covers — chat commands and the web page use the same rule.
  Grid roles (网格员, 网格长, 志愿者, 医护, 民警) reach only the grids of their 负责 rows, whatever a
  row says; street roles (街道干部, 街道值班) also every grid of a street they cover, and a street
  role with a scope that names neither grid nor street covers the whole district (全区).
- `chain`: who is told of an alarm at a level of the escalation chain (cumulative), and
  `first_level`: the one fallback rule — a level nobody would hear is skipped upwards.
- `grid_contacts`: whom a grid's routine business goes to (the daily ledger, a quarantine that has
  ended): its grid workers, else the first level of the chain that has someone.
- `message_household`: the household a resident's message is about.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from bot.dispatch import Context
from handlers import texts
from handlers.common import private_channel
from storage.models import (
    STREET_ROLES,
    Building,
    Community,
    Grid,
    Household,
    Quarantine,
    Resident,
    Role,
    Staff,
    StaffScope,
    Street,
)
from storage.queries import households_at, natural_key, split_label

MAX_LEVEL = 2

# --- scope ------------------------------------------------------------------------------------------


@dataclass
class Scope:
    """The grids one staff member may see and act on; `district` means every grid (全区)."""

    district: bool
    grids: dict[int, dict[str, str]] = field(default_factory=dict)  # id → {name, community, street}

    @property
    def grid_ids(self) -> set[int]:
        return set(self.grids)

    def allows(self, grid_id: int | None) -> bool:
        return grid_id is not None and (self.district or grid_id in self.grids)

    def where(self, col: Any, grid_id: int | None = None) -> ColumnElement[bool]:
        if grid_id is not None:
            return col == grid_id
        if self.district:
            return true()
        return col.in_(list(self.grids)) if self.grids else false()

    def names(self) -> list[str]:
        return [g["name"] for g in self.grids.values()]


async def scope_of(session: AsyncSession, staff: Staff | Sequence[Staff]) -> Scope:
    """The scope of one person (who may have one Staff row per channel)."""
    rows = [staff] if isinstance(staff, Staff) else list(staff)
    grid_ids: set[int] = set()
    street_ids: set[int] = set()
    district = False
    for st in rows:
        street_role = st.role in STREET_ROLES
        for sc in st.scopes:
            if sc.grid_id is not None:
                grid_ids.add(sc.grid_id)
            elif not street_role:
                continue  # a grid role never reaches beyond its grids
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
    found = sorted((await session.execute(q)).all(), key=lambda r: natural_key(r[1]))
    return Scope(district, {gid: {"name": name, "community": comm, "street": street}
                            for gid, name, comm, street in found})


# --- staff of grids and streets ---------------------------------------------------------------------


async def staff_by_grid(session: AsyncSession, grid_ids: Iterable[int] | None,
                        roles: Sequence[str]) -> dict[int, list[Staff]]:
    """Staff of these roles by grid, oldest first, in one query however many grids (None: all)."""
    q = (select(StaffScope.grid_id, Staff).join(Staff, Staff.id == StaffScope.staff_id)
         .where(Staff.role.in_(list(roles)), StaffScope.grid_id.is_not(None)).order_by(Staff.id))
    if grid_ids is not None:
        q = q.where(StaffScope.grid_id.in_(list(grid_ids)))
    out: dict[int, list[Staff]] = defaultdict(list)
    for grid_id, st in (await session.execute(q)).unique().all():
        if all(s.id != st.id for s in out[grid_id]):
            out[grid_id].append(st)
    return out


async def staff_of_grid(session: AsyncSession, grid_id: int, roles: Sequence[str]) -> list[Staff]:
    return (await staff_by_grid(session, [grid_id], roles)).get(grid_id, [])


async def staff_of_street(session: AsyncSession, street_id: int | None, roles: Sequence[str]) -> list[Staff]:
    """Staff with a scope on this street (not on one of its grids); None: of every street."""
    scoped = select(StaffScope.staff_id).where(StaffScope.grid_id.is_(None))
    if street_id is not None:
        scoped = scoped.where(StaffScope.street_id == street_id)
    q = select(Staff).where(Staff.role.in_(list(roles)), Staff.id.in_(scoped)).order_by(Staff.id)
    return list((await session.scalars(q)).all())


async def grid_workers(session: AsyncSession, grid_id: int) -> list[Staff]:
    return await staff_of_grid(session, grid_id, (Role.WORKER,))


async def street_of_grid(session: AsyncSession, grid_id: int) -> int | None:
    return await session.scalar(select(Community.street_id).join(Grid, Grid.community_id == Community.id)
                                .where(Grid.id == grid_id))


# --- the alert chain ---------------------------------------------------------------------------------


def _unique(staff: Iterable[Staff]) -> list[Staff]:
    seen: set[int] = set()
    out = []
    for s in staff:
        if s.id not in seen:
            seen.add(s.id)
            out.append(s)
    return out


async def has_team(session: AsyncSession, resident: Resident | None, day: date) -> bool:
    """Key persons and people in home quarantine have a 1+4 team that hears at level 0 already."""
    if resident is None:
        return False
    if resident.is_key_person or resident.category == "居家隔离":
        return True
    return await session.scalar(select(Quarantine.id).where(
        Quarantine.resident_id == resident.id, Quarantine.released_at.is_(None), Quarantine.start <= day)
        .limit(1)) is not None


async def chain(session: AsyncSession, grid_id: int | None, level: int, *, resident: Resident | None = None,
                day: date | None = None, street_id: int | None = None) -> list[Staff]:
    """Everyone told of an alarm in `grid_id` at `level` (cumulative), in a stable order.

    Level 0: the grid's workers (网格员), and the 包保 team of a key person or a person in
    quarantine; level 1 adds the grid leader (网格长) and the team's medic, else the grid's 医护;
    level 2 adds the street duty officer (街道值班). An alarm that is in no grid yet (a private
    message with no address) has only level 2: the duty officers of every street.
    """
    if grid_id is None:
        return await duty_everywhere(session) if level >= MAX_LEVEL else []
    found: list[Staff] = list(await grid_workers(session, grid_id))
    if resident is not None and day is not None and await has_team(session, resident, day):
        for sid in (resident.cadre_id, resident.police_id, resident.medic_id):
            if sid and (st := await session.get(Staff, sid)) is not None:
                found.append(st)
    if level >= 1:
        found += await staff_of_grid(session, grid_id, (Role.GRID_LEADER,))
        medic = await session.get(Staff, resident.medic_id) if resident and resident.medic_id else None
        found += [medic] if medic else await staff_of_grid(session, grid_id, (Role.MEDIC,))
    if level >= 2:
        if street_id is None:
            street_id = await street_of_grid(session, grid_id)
        found += await staff_of_street(session, street_id, (Role.DUTY,))
    return _unique(found)


async def first_level(session: AsyncSession, grid_id: int | None, level: int, **kw: Any) -> tuple[int, list[Staff]]:
    """The one fallback rule: from `level` up, the first level at which someone hears the alarm."""
    staff = await chain(session, grid_id, level, **kw)
    while not staff and level < MAX_LEVEL:
        level += 1
        staff = await chain(session, grid_id, level, **kw)
    return level, staff


async def duty_everywhere(session: AsyncSession) -> list[Staff]:
    """Every street duty officer of the deployment: for an alarm nobody can place yet."""
    return await staff_of_street(session, None, (Role.DUTY,))


async def grid_contacts(session: AsyncSession, grid_ids: Sequence[int]) -> dict[int, list[Staff]]:
    """Whom each grid's routine business goes to: its workers, else its leader (first of the chain
    with someone in the grid), so nothing goes unheard."""
    out = await staff_by_grid(session, grid_ids, (Role.WORKER,))
    missing = [g for g in grid_ids if not out.get(g)]
    if missing:
        leaders = await staff_by_grid(session, missing, (Role.GRID_LEADER,))
        for g in missing:
            out[g] = leaders.get(g, [])
    return out


# --- how to reach a staff member -----------------------------------------------------------------------


def contacts(staff: Staff) -> list[tuple[str, str]]:
    """(channel, user id) to send a staff member's private messages on, in the order to try them:
    the roster's 渠道 "wecom、bridge" → the WeCom app first, then the bridge. An AI-bot user is
    reached through the WeCom app (handlers.common.private_channel)."""
    out: list[tuple[str, str]] = []
    for channel, uid in staff.contacts:
        c = (private_channel(channel), uid)
        if uid and c not in out:
            out.append(c)
    return out


def next_contact(staff: Staff, channel: str, uid: str | None) -> tuple[str, str] | None:
    """The contact to try after (channel, uid) failed; None when it was the last."""
    found = contacts(staff)
    try:
        i = found.index((channel, uid or ""))
    except ValueError:
        return found[0] if found and found[0] != (channel, uid) else None
    return found[i + 1] if i + 1 < len(found) else None


async def unreachable_staff(session: AsyncSession, configured: Iterable[str]) -> list[Staff]:
    """Staff none of whose channels is configured in this process: no alert can reach them."""
    on = set(configured)
    staff = (await session.scalars(select(Staff).order_by(Staff.id))).all()
    return [st for st in staff if not any(ch in on for ch, _ in contacts(st))]


def staff_title(staff: Staff) -> str:
    return f"{staff.role}{staff.name}"


def describe(staff: Sequence[Staff]) -> str:
    """'网格员张伟' or '网格员张伟、民警刘强' — how a resident hears who was told."""
    return "、".join(staff_title(s) for s in staff[:3]) or "社区工作人员"


# --- whom a message is about -------------------------------------------------------------------------


async def message_household(ctx: Context, address: str | None = None) -> tuple[Household | None, str]:
    """The household a message is about: an address in it (a neighbour's), else the sender's own.

    Returns (None, reason) when the message names an address that is not in the roster.
    """
    own = ctx.household or (ctx.resident.household if ctx.resident else None)
    address = address if address is not None else getattr(ctx.parsed, "address", None)
    if not address:
        return own, ""
    parts = split_label(address)
    if parts is None:
        return own, ""
    b, u, r = parts
    # An address without a building number means this building: the group's, else the sender's own.
    default_building: Building | None = ctx.building or (own.building if own else None)
    if own is not None and not b and own.building_id == (default_building.id if default_building else None) \
            and u in ("", own.unit) and r == own.room:
        return own, ""
    found = await households_at(ctx.session, address, building=None if b else default_building)
    if own is not None:
        # a resident reports for neighbours, not for any household of the district: their own
        # community only (the same building number in another community is someone else's)
        found = [h for h in found if h.building.grid.community_id == own.building.grid.community_id]
    elif ctx.staff is not None:
        scope = await scope_of(ctx.session, ctx.staff)
        found = [h for h in found if scope.allows(h.building.grid_id)]
    if len(found) > 1 and ctx.building is not None:
        found = [h for h in found if h.building_id == ctx.building.id] or found
    if found:
        return found[0], ""
    return None, texts.UNKNOWN_HOUSEHOLD.format(address=address.strip("-"))


__all__ = ["Scope", "scope_of", "staff_by_grid", "staff_of_grid", "staff_of_street", "grid_workers", "chain",
           "first_level", "duty_everywhere", "grid_contacts", "staff_title", "describe", "message_household",
           "has_team", "contacts", "next_contact", "unreachable_staff", "MAX_LEVEL"]
