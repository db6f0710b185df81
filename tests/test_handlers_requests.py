"""Service requests: ticket, staff alerts, 接单 / 完成, the resident hearing each step."""

from __future__ import annotations

import asyncio

import pytest_asyncio
from sqlalchemy import select

from storage.models import AuditEvent, ServiceRequest
from tests.testbot import make_bot


@pytest_asyncio.fixture
async def bot(sqlite_db, clock):
    return await make_bot(sqlite_db, clock)


async def _requests(tb):
    async with tb.db.session() as s:
        return list((await s.scalars(select(ServiceRequest).order_by(ServiceRequest.id))).unique().all())


async def test_grocery_request_taken_and_done(bot):
    await bot.say("wangfang", "帮忙买点青菜和鸡蛋", chat="g3")
    [req] = await _requests(bot)
    assert req.category == "groceries" and req.items == ["青菜", "鸡蛋"] and req.status == "open"
    code = f"R{req.id}"
    for who in ("zhangwei", "lina"):
        assert code in bot.last_to(who) and "青菜" in bot.last_to(who) and "3-2-501" in bot.last_to(who)
    assert code in bot.last_to("wangfang") and "买菜" in bot.last_to("wangfang")
    assert bot.to_chat("g3") == [], "a request is answered privately"

    await bot.say("lina", f"接单 {code}")
    assert f"您的买菜需求{code}已由志愿者李娜接单" in bot.last_to("wangfang")
    await bot.say("zhangwei", f"接单：{code}")
    assert "已由李娜接单" in bot.last_to("zhangwei")
    await bot.say("lina", f"完成 {code} 已放门口")
    [req] = await _requests(bot)
    assert req.status == "done" and req.assignee_id == bot.seed.ids["lina"] and req.note == "已放门口"
    assert "已完成" in bot.last_to("wangfang") and "已放门口" in bot.last_to("wangfang")
    async with bot.db.session() as s:
        actions = (await s.scalars(select(AuditEvent.action).order_by(AuditEvent.id))).all()
    assert actions == ["request.take", "request.done"]


async def test_other_grid_cannot_take(bot):
    await bot.say("wangfang", "垃圾两天没人收了")
    [req] = await _requests(bot)
    assert req.category == "garbage"
    await bot.say("zhaoqiang", f"接单 R{req.id}")
    assert "不在您负责的网格内" in bot.last_to("zhaoqiang")
    [req] = await _requests(bot)
    assert req.status == "open"


async def test_two_requests_at_the_same_instant_make_two_tickets(bot):
    a = bot.inbound("wangfang", "帮忙买点青菜")
    b = bot.inbound("wangfang", "帮我买点布洛芬")
    await asyncio.gather(bot.send(a), bot.send(b))
    reqs = await _requests(bot)
    assert sorted(r.category for r in reqs) == ["groceries", "medicine"]
