"""Registration of unknown senders: binding to roster households only, first reports kept."""

from __future__ import annotations

import pytest_asyncio
from sqlalchemy import select

from storage.models import CheckIn, Escalation, Resident
from tests.testbot import make_bot


@pytest_asyncio.fixture
async def bot(sqlite_db, clock):
    return await make_bot(sqlite_db, clock)


async def _resident(tb, sender):
    async with tb.db.session() as s:
        return await s.scalar(select(Resident).where(Resident.channel_user_id == sender))


async def test_unknown_sender_is_asked_then_binds_with_address_and_name(bot):
    await bot.say("newbie", "你好")
    assert "楼号-单元-房号" in bot.last_to("newbie")
    await bot.say("newbie", "3-2-601 李明")
    r = await _resident(bot, "newbie")
    assert r is not None and r.name == "李明" and r.category == "常住" and r.bound_at is not None
    assert r.household_id == bot.seed.ids["h:3-2-601"]
    assert "登记成功" in bot.last_to("newbie")
    assert "新登记" in bot.last_to("zhangwei") and "李明" in bot.last_to("zhangwei")


async def test_roster_resident_without_chat_id_is_bound_not_duplicated(bot):
    await bot.say("liu-wx", "3-2-502 刘大爷", chat="g3")
    r = await _resident(bot, "liu-wx")
    assert r.id == bot.seed.ids["liudaye"]


async def test_group_binding_needs_the_groups_building(bot):
    await bot.say("x1", "7-1-201 赵小", chat="g3")
    assert await _resident(bot, "x1") is None
    assert "3号楼" in bot.last_to("x1")


async def test_address_not_in_roster_does_not_bind(bot):
    await bot.say("x2", "3-2-999 张三")
    assert await _resident(bot, "x2") is None
    assert "3-2-999" in bot.last_to("x2")


async def test_ambiguous_building_number_asks_for_the_community(bot):
    await bot.say("x3", "3-2-501 张三")
    assert await _resident(bot, "x3") is None
    assert "阳光社区" in bot.last_to("x3") and "幸福社区" in bot.last_to("x3")
    await bot.say("x3", "幸福社区 3-2-501 张三")
    r = await _resident(bot, "x3")
    assert r.household_id == bot.seed.ids["h:j3-2-501"]


async def test_first_checkin_with_address_is_recorded_after_binding(bot):
    await bot.say("x4", "3-2-601 36.6 正常", chat="g3", name="小周")
    r = await _resident(bot, "x4")
    assert r is not None and r.name == "小周"
    async with bot.db.session() as s:
        c = await s.scalar(select(CheckIn))
    assert c is not None and c.household_id == bot.seed.ids["h:3-2-601"] and c.temperature == 36.6


async def test_unknown_sender_fever_in_group_reaches_the_grid_worker(bot):
    await bot.say("x5", "我发烧39度了", chat="g3", name="路人甲")
    alert = bot.last_to("zhangwei")
    assert "未登记居民" in alert and "3号楼" in alert and "39" in alert
    assert "住址" in bot.last_to("x5")
    assert bot.to_chat("g3") == ["已收到，工作人员马上联系您。"]
    assert bot.group_leaks() == []


async def test_unknown_sender_emergency_in_group_reaches_the_whole_chain(bot):
    await bot.say("x6", "快叫120 我爸晕倒了", chat="g3")
    for who in ("zhangwei", "chengang", "liuyi", "sunmin"):
        assert "紧急求助" in bot.last_to(who), who
    assert "120" in bot.last_to("x6")


async def test_private_fever_before_registering_is_escalated_on_binding(bot):
    await bot.say("x7", "我发烧了38.2度")
    assert "住址" in bot.last_to("x7")
    await bot.say("x7", "3-2-601 周七")
    async with bot.db.session() as s:
        esc = await s.scalar(select(Escalation))
    assert esc is not None and esc.temperature == 38.2 and esc.household_id == bot.seed.ids["h:3-2-601"]
    assert "38.2" in bot.last_to("zhangwei")
