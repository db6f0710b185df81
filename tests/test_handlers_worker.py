"""Worker commands in private chat: 未报, 今日, 隔离, 解除, 通知, 帮助, scope and spelling."""

from __future__ import annotations

from datetime import date

import pytest_asyncio
from sqlalchemy import select

from storage.models import AuditEvent, Notice, OutboundMessage, Quarantine, Resident
from tests.testbot import make_bot


@pytest_asyncio.fixture
async def bot(sqlite_db, clock):
    return await make_bot(sqlite_db, clock)


async def test_unreported_lists_my_grid_by_building_naturally_sorted(bot):
    await bot.say("wangfang", "3-2-501 36.5 正常")
    await bot.say("zhangwei", "未报")
    text = bot.last_to("zhangwei")
    assert "未报 5/6 户" in text
    assert "3-2-501" not in text and "7-1-201" not in text, "reported, and another grid's"
    assert text.index("3-1-101") < text.index("3-1-1001") < text.index("3-2-502") < text.index("5-12")
    assert text.index("3号楼") < text.index("5号院")


async def test_today_gives_the_ledger_line(bot):
    await bot.say("wangfang", "3-2-501 36.5 正常")
    await bot.say("zhangwei", "今日")
    text = bot.last_to("zhangwei")
    assert "一网格" in text and "二网格" not in text


async def test_quarantine_and_release(bot):
    bot.at(10, 0)
    await bot.say("zhangwei", "隔离　3-2-501：2026-02-08")
    async with bot.db.session() as s:
        q = await s.scalar(select(Quarantine).where(Quarantine.resident_id == bot.seed.ids["wangfang"]))
        r = await s.get(Resident, bot.seed.ids["wangfang"])
    assert q.start == date(2026, 2, 8) and q.days == 14 and r.category == "居家隔离"
    assert "2026-02-21" in bot.last_to("zhangwei")
    assert "居家隔离" in bot.last_to("wangfang")
    await bot.say("wangfang", "我发烧了38度")
    assert "居家隔离 第3天/共14天" in bot.last_to("zhangwei")
    await bot.say("zhangwei", "解除 3-2-501")
    async with bot.db.session() as s:
        q = await s.scalar(select(Quarantine).where(Quarantine.resident_id == bot.seed.ids["wangfang"]))
        r = await s.get(Resident, bot.seed.ids["wangfang"])
        actions = (await s.scalars(select(AuditEvent.action).order_by(AuditEvent.id))).all()
    assert q.released_at is not None and q.released_by == bot.seed.ids["zhangwei"] and r.category == "常住"
    assert "解除" in bot.last_to("wangfang")
    assert actions == ["quarantine.start", "quarantine.release"]


async def test_release_keeps_a_key_person_a_key_person(bot):
    await bot.say("zhangwei", "隔离 5-12 老赵 2-9")
    await bot.say("zhangwei", "解除 5-12")
    async with bot.db.session() as s:
        r = await s.get(Resident, bot.seed.ids["laozhao"])
    assert r.category == "重点人员"


async def test_quarantine_of_another_grid_is_refused(bot):
    await bot.say("zhangwei", "隔离 7-1-201")
    assert "不在您负责的网格" in bot.last_to("zhangwei")
    async with bot.db.session() as s:
        assert await s.scalar(select(Quarantine).where(Quarantine.resident_id == bot.seed.ids["zhaoliu"])) is None


async def test_notice_to_one_building_and_to_the_grid(bot):
    await bot.say("zhangwei", "通知 3号楼 今天下午3点核酸检测，请带好身份证")
    assert "1 个群" in bot.last_to("zhangwei")
    assert bot.to_chat("g3")[-1].startswith("【通知】今天下午3点核酸检测")
    await bot.say("zhangwei", "通知：网格 明天停水")
    assert "2 个群" in bot.last_to("zhangwei")
    assert bot.to_chat("g7") == [], "another grid's group"
    async with bot.db.session() as s:
        notices = (await s.scalars(select(Notice).order_by(Notice.id))).all()
        rows = (await s.scalars(select(OutboundMessage).where(OutboundMessage.kind == "notice"))).all()
    assert len(notices) == 2 and len(rows) == 3
    assert all(r.notice_id is not None for r in rows)
    # the street duty officer covers the street: all four groups
    await bot.say("sunmin", "通知 全部 疫情防控升级")
    assert "4 个群" in bot.last_to("sunmin")


async def test_help_and_unknown_command_and_group_silence(bot):
    await bot.say("zhangwei", "帮助")
    assert "收到 E23" in bot.last_to("zhangwei") and "通知" in bot.last_to("zhangwei")
    await bot.say("zhangwei", "随便说点什么")
    assert "帮助" in bot.last_to("zhangwei")
    assert await bot.say("zhangwei", "未报", chat="g3") == []
    await bot.say("zhangwei", "收到 E999")
    assert "没有找到 E999" in bot.last_to("zhangwei")
