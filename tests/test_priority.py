"""Alarms first: a fever read at intake is handled before the safe reports waiting in the inbox, and
its alerts are sent before the confirmations waiting in the outbox (issue 12)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest_asyncio
from sqlalchemy import select

from bot.inbox import HIGH, NORMAL
from bot.outbox import PRIORITY, priority_of
from storage.models import InboundMessage, OutboundMessage
from tests.testbot import make_bot


@pytest_asyncio.fixture
async def bot(db, clock):
    return await make_bot(db, clock)


async def _rows(db, model, *where):
    async with db.session() as s:
        return list((await s.scalars(select(model).where(*where).order_by(model.id))).all())


def test_outbox_priorities_in_one_place():
    assert priority_of("escalation") < priority_of("reply") < priority_of("confirmation") < priority_of("notice")
    assert priority_of("reminder") == priority_of("prompt") == priority_of("nudge") == priority_of("confirmation")
    assert priority_of("something new") == PRIORITY["reply"]


async def test_fever_overtakes_the_backlog_in_inbox_and_outbox(bot):
    rt = bot.rt
    safe = ["wangfang", "zhaoliu", "laozhao"] * 10
    for i, who in enumerate(safe):
        await rt.pipeline.accept(bot.inbound(who, f"36.{i % 5} 正常", msg_id=f"safe{i}"))
    fever_id = await rt.pipeline.accept(bot.inbound("chenjing", "我发烧了38.6度", msg_id="fever"))
    rows = await _rows(bot.db, InboundMessage)
    assert {r.priority for r in rows if r.id != fever_id} == {NORMAL}
    assert next(r.priority for r in rows if r.id == fever_id) == HIGH

    # Nothing was handed to a worker (workers=0): the sweep finds them once the lease is over.
    bot.clock.advance(timedelta(seconds=31))
    assert (await rt.pipeline.inbox.due_ids(1)) == [fever_id]
    assert await rt.pipeline.process_due(limit=1) == 1
    done = await _rows(bot.db, InboundMessage, InboundMessage.status == "done")
    assert [r.id for r in done] == [fever_id]
    while await rt.pipeline.process_due(limit=100):
        pass

    # The outbox: the alert was written before most confirmations, yet goes out first.
    pending = await _rows(bot.db, OutboundMessage, OutboundMessage.status == "pending")
    alerts = [r for r in pending if r.kind == "escalation"]
    assert alerts and all(r.priority == 0 for r in alerts)
    assert len(pending) > len(alerts) + 10
    rt.sender.batch = len(alerts)
    assert await rt.sender.run_once() == len(alerts)
    sent = await _rows(bot.db, OutboundMessage, OutboundMessage.status == "sent")
    assert {r.id for r in sent} == {r.id for r in alerts}
    await rt.sender.deliver_due()
    assert not await _rows(bot.db, OutboundMessage, OutboundMessage.status == "pending")


async def test_a_recipient_still_reads_in_order(bot):
    """A reply written after a confirmation to the same person is not sent before it."""
    from bot.model import Outbound
    from bot.outbox import enqueue

    now = bot.clock.now()
    async with bot.db.session() as s:
        first = await enqueue(s, [Outbound(channel="console", to_user="wangfang", text="已记录", kind="confirmation")], now)
        await enqueue(s, [Outbound(channel="console", to_user="x", text="x", kind="confirmation")], now)
        later = await enqueue(s, [Outbound(channel="console", to_user="wangfang", text="回复", kind="reply")], now)
    bot.rt.sender.batch = 1
    # The reply is the most urgent row; the confirmation before it to the same person comes along.
    assert await bot.rt.sender.run_once() == 2
    sent = await _rows(bot.db, OutboundMessage, OutboundMessage.status == "sent")
    assert {r.id for r in sent} == {first[0].id, later[0].id}


# -- GRIDBOT_CONFIRM: the private "已记录" of a safe check-in -----------------------------------------


async def test_confirm_abnormal_by_default_keeps_safe_reports_quiet(db, clock):
    from bot.config import Settings

    assert Settings().confirm == "abnormal"
    tb = await make_bot(db, clock, confirm="abnormal")
    await tb.say("wangfang", "36.5 正常")
    assert not tb.to("wangfang")
    await tb.say("chenjing", "我发烧了38.6度")  # an abnormal report is always answered
    assert tb.to("chenjing") and tb.to("zhangwei")
    tb.clock.advance(timedelta(minutes=5))
    await tb.say("chenjing", "刚才写错了，36.5 正常")  # a correction is confirmed
    assert "已更正" in tb.last_to("chenjing")


async def test_confirm_all_and_none(db, clock):
    tb = await make_bot(db, clock, confirm="all")
    rows = await tb.say("wangfang", "36.5 正常")
    assert [(r.kind, r.priority) for r in rows] == [("confirmation", 2)] and "已记录" in rows[0].text
    from bot.config import Settings
    from tests.testbot import TestBot

    quiet = TestBot(db, clock, Settings(database_url=db.url, confirm="none"))
    quiet._ids = iter(range(1000, 2000))
    await quiet.say("zhaoliu", "36.5 正常")
    assert not quiet.to("zhaoliu")


def test_confirm_setting_is_checked():
    import pytest

    from bot.config import ConfigError, load_settings

    assert load_settings({"GRIDBOT_CONFIRM": "all"}, toml_path="/nonexistent").confirm == "all"
    with pytest.raises(ConfigError, match="GRIDBOT_CONFIRM"):
        load_settings({"GRIDBOT_CONFIRM": "some"}, toml_path="/nonexistent")


async def test_a_pending_confirmation_is_not_queued_twice(db, clock):
    from bot.model import Outbound
    from bot.outbox import enqueue

    now = clock.now()
    ok = Outbound(channel="console", to_user="wangfang", text="已记录：3-2-501 今日平安。谢谢！", kind="confirmation")
    async with db.session() as s:
        assert len(await enqueue(s, [ok], now)) == 1
        assert await enqueue(s, [ok], now) == []
        assert len(await enqueue(s, [Outbound(channel="console", to_user="wangfang", text=ok.text)], now)) == 1


# -- recovery at full speed -------------------------------------------------------------------------


async def test_rows_left_pending_are_recovered_at_full_speed_fever_first(db, settings, clock):
    """A crash (or a lost stream) leaves 400 rows pending: once their lease is over the sweep keeps the
    workers fed (the old sweep offered `_high_water // 2` = 8 ids a second: 50 s), a fever first."""
    import time

    from bot.app import build_runtime
    from bot.dispatch import Dispatcher, Router
    from bot.model import Inbound

    order: list[str] = []
    r = Router("record")

    @r.message()
    async def record(ctx):
        order.append(ctx.text)
        return []

    rt = build_runtime(settings, clock, db=db, dispatcher=Dispatcher([r]), workers=2)
    now = clock.now()
    n = 400
    for i in range(n):
        await rt.pipeline.accept(Inbound(channel="console", msg_id=f"p{i}", sender_id=f"u{i}", text="36.5 正常",
                                         sent_at=now))
    await rt.pipeline.accept(Inbound(channel="console", msg_id="fever", sender_id="ill", text="发烧38.7度",
                                     sent_at=now))
    # Nothing was handed to a worker (this process "crashed"): the rows wait out their lease.
    rt.pipeline._queue = type(rt.pipeline._queue)()
    rt.pipeline._queued.clear()
    clock.advance(timedelta(seconds=31))
    t0 = time.monotonic()
    rt.pipeline.start()
    try:
        while len(order) < n + 1 and time.monotonic() - t0 < 60:
            await asyncio.sleep(0.05)
    finally:
        await rt.pipeline.stop()
    took = time.monotonic() - t0
    assert len(order) == n + 1
    assert order.index("发烧38.7度") < rt.pipeline.n_workers  # taken first (two workers run at once)
    assert took < 25, took  # ~2-5 s here; the trickle took n / 8 = 50 s
    print(f"\n{n + 1} rows recovered in {took:.1f} s ({(n + 1) / took:.0f}/s)")
