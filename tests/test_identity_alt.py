"""A staff member's second channel (Staff.alt_channels) is recognised: a worker alerted on the bridge
who answers "收到 E5" there acknowledges the escalation (bot/pipeline.py `identity`)."""

from __future__ import annotations

from datetime import timedelta

import pytest_asyncio
from sqlalchemy import select, update

from storage.models import Escalation, Staff
from tests.testbot import make_bot


@pytest_asyncio.fixture
async def bot(db, clock):
    return await make_bot(db, clock)


async def test_an_ack_on_the_staff_members_second_channel_counts(bot):
    tb = bot
    async with tb.db.session() as s:
        await s.execute(update(Staff).where(Staff.id == tb.seed.ids["zhangwei"])
                        .values(alt_channels=[{"channel": "bridge", "id": "wx-zhangwei"}]))
    await tb.say("wangfang", "发烧38.4度")
    async with tb.db.session() as s:
        [esc] = (await s.scalars(select(Escalation))).all()
    tb.clock.advance(timedelta(minutes=3))
    await tb.say("wx-zhangwei", f"收到 E{esc.id}", channel="bridge")
    async with tb.db.session() as s:
        esc = await s.get(Escalation, esc.id)
    assert esc.acked_by == tb.seed.ids["zhangwei"], esc.status
    assert "网格员张伟已收到" in tb.last_to("wangfang")


async def test_a_second_channel_added_later_is_seen_within_a_minute(bot, monkeypatch):
    import time

    tb = bot
    await tb.say("wx-new", "你好", channel="bridge")  # a stranger: the map is loaded (empty of it)
    assert tb.rt.pipeline._alt is not None and ("bridge", "wx-new") not in tb.rt.pipeline._alt
    async with tb.db.session() as s:
        await s.execute(update(Staff).where(Staff.id == tb.seed.ids["zhangwei"])
                        .values(alt_channels=[{"channel": "bridge", "id": "wx-new"}]))
    real = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: real() + 61)
    await tb.say("wangfang", "发烧38.4度")
    async with tb.db.session() as s:
        [esc] = (await s.scalars(select(Escalation))).all()
    await tb.say("wx-new", f"收到 E{esc.id}", channel="bridge")
    assert tb.rt.pipeline._alt[("bridge", "wx-new")] == tb.seed.ids["zhangwei"]
    assert "网格员张伟已收到" in tb.last_to("wangfang")
