"""Fevers, emergencies and the escalation chain, with a driven clock (no sleeping)."""

from __future__ import annotations

from datetime import timedelta

import pytest_asyncio
from sqlalchemy import func, select

from handlers.escalation import escalate_due, open_escalation
from storage.models import AuditEvent, Escalation, Household, Resident
from tests.testbot import make_bot


@pytest_asyncio.fixture
async def bot(sqlite_db, clock):
    return await make_bot(sqlite_db, clock)


@pytest_asyncio.fixture
async def any_bot(db, clock):
    """SQLite and the real PostgreSQL."""
    return await make_bot(db, clock)


async def _escalations(tb):
    async with tb.db.session() as s:
        return list((await s.scalars(select(Escalation).order_by(Escalation.id))).unique().all())


async def test_fever_goes_to_the_grid_worker_then_up_the_chain_until_acked(any_bot):
    tb = any_bot
    tb.at(9, 10)
    await tb.say("wangfang", "我发烧了38.5度，还咳嗽", chat="g3")
    [esc] = await _escalations(tb)
    assert esc.kind == "fever" and esc.level == 0 and esc.temperature == 38.5
    alert = tb.last_to("zhangwei")
    for want in (f"E{esc.id}", "3-2-501", "王芳", "38.5", "咳嗽", "我发烧了38.5度，还咳嗽"):
        assert want in alert
    assert tb.to("chengang") == [] and tb.to("sunmin") == []
    # the resident: privately, asked to measure again; the group: a neutral line only
    assert "一小时后再测" in tb.last_to("wangfang")
    assert tb.to_chat("g3") == ["已收到，工作人员马上联系您。"]

    tb.clock.advance(timedelta(minutes=14))
    assert await tb.sweep() == []
    tb.clock.advance(timedelta(minutes=1))  # 15 minutes: the grid leader and the grid's medic
    up = await tb.sweep()
    assert sorted(r.to_user for r in up) == ["chengang", "liuyi"]
    assert "38.5" in tb.last_to("chengang")
    assert await tb.sweep() == [], "a second sweep at the same time sends nothing"
    tb.clock.advance(timedelta(minutes=15))  # 30 minutes: the street duty officer
    up = await tb.sweep()
    assert [r.to_user for r in up] == ["sunmin"]
    [esc] = await _escalations(tb)
    assert esc.level == 2 and esc.deadline_at is None

    await tb.say("sunmin", f"收到 E{esc.id}")
    [esc] = await _escalations(tb)
    assert esc.status == "acked" and esc.acked_by == tb.seed.ids["sunmin"]
    assert "街道值班孙敏已收到" in tb.last_to("wangfang")
    tb.clock.advance(timedelta(hours=1))
    assert await tb.sweep() == []
    assert tb.group_leaks() == []


async def test_ack_stops_the_chain(any_bot):
    tb = any_bot
    await tb.say("wangfang", "发烧38度")
    [esc] = await _escalations(tb)
    tb.clock.advance(timedelta(minutes=5))
    await tb.say("zhangwei", f"收到E{esc.id}")
    assert "网格员张伟已收到" in tb.last_to("wangfang")
    tb.clock.advance(timedelta(minutes=40))
    assert await tb.sweep() == []
    assert tb.to("chengang") == [] and tb.to("sunmin") == []
    await tb.say("zhangwei", f"完成 e{esc.id} 已送医")
    [esc] = await _escalations(tb)
    assert esc.status == "closed" and esc.note == "已送医" and esc.closed_by == tb.seed.ids["zhangwei"]
    async with tb.db.session() as s:
        actions = (await s.scalars(select(AuditEvent.action).order_by(AuditEvent.id))).all()
    assert actions == ["escalation.ack", "escalation.close"]


async def test_catch_up_after_downtime_moves_to_the_due_level_at_once(bot):
    await bot.say("wangfang", "发烧38度")
    bot.clock.advance(timedelta(minutes=45))
    up = await bot.sweep()
    assert sorted(r.to_user for r in up) == ["chengang", "liuyi", "sunmin"]
    assert await bot.sweep() == []


async def test_emergency_goes_to_the_whole_chain_at_once_and_resident_is_told_to_call_120(bot):
    await bot.say("wangfang", "我喘不上气了，救命", chat="g3")
    [esc] = await _escalations(bot)
    assert esc.kind == "emergency" and esc.level == 2
    for who in ("zhangwei", "chengang", "liuyi", "sunmin"):
        assert f"E{esc.id}" in bot.last_to(who)
    assert "120" in bot.last_to("wangfang")
    assert bot.to_chat("g3") == ["已收到，工作人员马上联系您。"]
    assert bot.group_leaks() == []


async def test_quarantined_person_has_the_whole_1_plus_4_team_at_once(bot):
    await bot.say("chenjing", "我发烧了38.5度，还咳嗽")
    [esc] = await _escalations(bot)
    for who in ("zhangwei", "zhoutao", "wangjing", "huangyi"):
        assert "38.5" in bot.last_to(who), who
    assert "居家隔离 第5天/共14天" in bot.last_to("zhangwei")
    assert bot.to("chengang") == []
    # the team's own medic stands in for the grid's medic at level 1
    bot.clock.advance(timedelta(minutes=15))
    up = await bot.sweep()
    assert [r.to_user for r in up] == ["chengang"]
    # a team member who received it may acknowledge it
    await bot.say("wangjing", f"收到 E{esc.id}")
    assert "民警王警官已收到" in bot.last_to("chenjing")


async def test_second_fever_same_day_updates_and_renotifies_only_when_worse(bot):
    await bot.say("wangfang", "发烧37.8")
    n = len(bot.to("zhangwei"))
    await bot.say("wangfang", "还是37.6")
    assert len(await _escalations(bot)) == 1
    assert len(bot.to("zhangwei")) == n, "not worse: no new alert"
    await bot.say("wangfang", "现在烧到38.6了")
    [esc] = await _escalations(bot)
    assert esc.temperature == 38.6
    assert len(bot.to("zhangwei")) == n + 1 and "38.6" in bot.last_to("zhangwei")


async def test_fever_and_medicine_request_in_one_message(bot):
    await bot.say("wangfang", "老伴发烧了三十八度五，能帮忙买点布洛芬吗", chat="g3")
    [esc] = await _escalations(bot)
    assert esc.kind == "fever" and esc.temperature == 38.5
    texts = bot.to("zhangwei")
    assert any("E" in t and "38.5" in t for t in texts)
    assert any("R" in t and "布洛芬" in t for t in texts)
    assert any("布洛芬" in t for t in bot.to("lina"))
    assert bot.group_leaks() == []


async def test_other_grids_worker_cannot_ack(bot):
    await bot.say("wangfang", "发烧38度")
    [esc] = await _escalations(bot)
    await bot.say("zhaoqiang", f"收到 E{esc.id}")
    assert "不在您负责的网格内" in bot.last_to("zhaoqiang")
    [esc] = await _escalations(bot)
    assert esc.status == "open"


async def test_missed_report_with_dedup_key_opens_once(any_bot):
    tb = any_bot
    async with tb.db.session() as s:
        r = await s.get(Resident, tb.seed.ids["chenjing"])
        h = await s.get(Household, r.household_id)
        key = f"missed:{r.id}:2026-02-10:am"
        first = await open_escalation(s, tb.settings, tb.clock.now(), kind="missed", household=h, resident=r,
                                      text="", summary="上午体温未报（已提醒2次）", dedup_key=key)
        again = await open_escalation(s, tb.settings, tb.clock.now(), kind="missed", household=h, resident=r,
                                      text="", summary="上午体温未报（已提醒2次）", dedup_key=key)
        assert first.created and not again.created
        assert first.escalation.id == again.escalation.id and again.messages == []
        out1 = first.messages
        assert {st.channel_user_id for st in first.recipients} == {o.to_user for o in out1}
        assert {o.to_user for o in out1} == {"zhangwei", "zhoutao", "wangjing", "huangyi"}
        assert all("未按时报告" in o.text for o in out1)
        assert await s.scalar(select(func.count(Escalation.id))) == 1
        assert await escalate_due(s, tb.settings, tb.clock.now()) == []


async def test_family_member_who_reported_hears_when_it_is_taken_on(bot):
    tb = bot
    await tb.say("wangfang", "我妈发烧了38.2度")
    [esc] = await _escalations(tb)
    assert esc.resident_id is None and esc.reporter_id == tb.seed.ids["wangfang"]
    await tb.say("zhangwei", f"收到 E{esc.id}")
    assert "网格员张伟已收到" in tb.last_to("wangfang")
