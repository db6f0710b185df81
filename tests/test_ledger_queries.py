"""storage.queries and handlers.people: staff for a grid or street, scope, addresses, natural room order."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from handlers.people import chain, scope_of, staff_of_grid, staff_of_street
from storage.models import Community, Grid, Staff, StaffScope, Street
from storage.queries import households_at, natural_key, split_label
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
        workers = await staff_of_grid(s, g1.id, ("网格员",))
        assert [w.channel_user_id for w in workers] == ["zhangwei"]
        leaders = await staff_of_grid(s, g2.id, ("网格长", "医护"))
        assert sorted(w.channel_user_id for w in leaders) == ["lina", "yangjing"]
        street = await s.scalar(select(Street))
        duty = await staff_of_street(s, street.id, ("街道值班",))
        assert [d.channel_user_id for d in duty] == ["zhouqiang"]
        assert await staff_of_street(s, street.id, ("网格员",)) == []
        # the chain is cumulative: level 2 has the grid's worker, its leader and medic, the street's duty
        top = {st.channel_user_id for st in await chain(s, g2.id, 2)}
        assert {"lina", "yangjing", "zhouqiang"} <= top
        assert {st.channel_user_id for st in await chain(s, g2.id, 0)} < top

        found = await households_at(s, "3-2-301")
        assert [h.label for h in found] == ["3-2-301"]
        assert found[0].building.grid_id == g2.id
        courtyard = await households_at(s, "5-12")
        assert courtyard and courtyard[0].unit == "" and courtyard[0].room == "12"
        assert await households_at(s, "3-9-301") == []
        assert await households_at(s, "不是地址") == []


async def test_one_scope_rule_for_chat_and_web(db):
    """A grid role never reaches beyond its grids, even with a district-wide scope row; a street
    role with one covers every grid."""
    async with db.session() as s:
        street = Street(name="街道")
        grids = [Grid(name=f"{n}网格", community=Community(name=f"{n}社区", street=street)) for n in "甲乙"]
        s.add_all(grids)
        await s.flush()
        worker = Staff(name="甲", role="网格员", channel="console", channel_user_id="w",
                       scopes=[StaffScope(grid_id=grids[0].id), StaffScope()])
        duty = Staff(name="乙", role="街道值班", channel="console", channel_user_id="d", scopes=[StaffScope()])
        s.add_all([worker, duty])
        await s.flush()
        assert (await scope_of(s, worker)).grid_ids == {grids[0].id}
        scope = await scope_of(s, duty)
        assert scope.district and scope.grid_ids == {g.id for g in grids}
