"""storage.queries: staff for a grid or street, a household's grid, addresses, natural room order."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storage.models import Building, Community, Grid, Household, Street
from storage.queries import (
    find_household,
    grid_of_household,
    natural_key,
    split_label,
    staff_for_grid,
    staff_for_street,
)
from storage.roster import import_roster
from tests.test_roster import EXAMPLE, OPTS


def test_natural_key_orders_rooms_as_people_read_them():
    labels = ["3-10-101", "3-2-502", "10-1-101", "3-2-1001", "5-12", "5-9", "3-2-501"]
    assert sorted(labels, key=natural_key) == ["3-2-501", "3-2-502", "3-2-1001", "3-10-101", "5-9", "5-12",
                                               "10-1-101"]
    assert sorted(["10号楼", "9号楼", "综合楼"], key=natural_key) == ["9号楼", "10号楼", "综合楼"]


@pytest.mark.parametrize(("label", "parts"), [
    ("3-2-501", ("3", "2", "501")), ("5-12", ("5", "", "12")), (" 3-2-501 ", ("3", "2", "501")),
    ("5--12", ("5", "", "12")), ("-2-501", ("", "2", "501")), ("3-2-", None), ("3", None), ("1-2-3-4", None),
])
def test_split_label(label, parts):
    assert split_label(label) == parts


async def test_staff_and_grid_lookups(db):
    assert (await import_roster(db, EXAMPLE, **OPTS)).ok
    async with db.session() as s:
        g1 = await s.scalar(select(Grid).where(Grid.name == "成丰一网格"))
        g2 = await s.scalar(select(Grid).where(Grid.name == "成丰二网格"))
        workers = await staff_for_grid(s, g1.id, ("网格员",))
        assert [w.channel_user_id for w in workers] == ["zhangwei"]
        chain = await staff_for_grid(s, g2.id, ("网格长", "医护"))
        assert sorted(w.channel_user_id for w in chain) == ["lina", "yangjing"]
        street = await s.scalar(select(Street))
        duty = await staff_for_street(s, street.id, ("街道值班",))
        assert [d.channel_user_id for d in duty] == ["zhouqiang"]
        assert await staff_for_street(s, street.id, ("网格员",)) == []

        h = await find_household(s, "3-2-301")
        assert h is not None and h.label == "3-2-301"
        assert (await grid_of_household(s, h.id)).id == g2.id
        courtyard = await find_household(s, "5-12")
        assert courtyard is not None and courtyard.unit == "" and courtyard.room == "12"
        assert await find_household(s, "3-9-301") is None
        assert await find_household(s, "不是地址") is None
        with pytest.raises(LookupError):
            await grid_of_household(s, 999999)


async def test_find_household_prefers_the_nearby_community(db):
    async with db.session() as s:
        street = Street(name="街道")
        for cname in ("甲社区", "乙社区"):
            grid = Grid(name=f"{cname}网格", community=Community(name=cname, street=street))
            s.add(Household(building=Building(name=f"{cname}3号楼", number="3", grid=grid, chat_id=f"c-{cname}"),
                            unit="2", room="501"))
            s.add(Building(name=f"{cname}8号楼", number="8", grid=grid, chat_id=f"c8-{cname}"))
    async with db.session() as s:
        near = await s.scalar(select(Building).where(Building.name == "乙社区8号楼"))
        h = await find_household(s, "3-2-501", near=near)
        assert h is not None and h.building.name == "乙社区3号楼"
        # Two candidates and nothing to choose by: better to ask than to guess.
        assert await find_household(s, "3-2-501") is None
        assert (await s.scalar(select(Household).where(Household.id == h.id))).label == "3-2-501"
