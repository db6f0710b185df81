"""The pipeline: inbox → identity → lock → session → dispatcher → outbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.app import build_runtime, handle_now
from bot.dispatch import Context, Dispatcher, Router, UserError
from bot.model import Inbound
from bot.state import RedisState
from storage.models import (
    AuditEvent,
    Building,
    Community,
    Grid,
    Household,
    InboundMessage,
    OutboundMessage,
    Resident,
    Street,
)


def echo_dispatcher(seen: list[Context] | None = None) -> Dispatcher:
    """A tiny router of the tests' own: it records one fact and echoes the text privately."""
    r = Router("echo")

    @r.message(lambda ctx: ctx.text.startswith("boom"))
    async def boom(ctx: Context):
        raise RuntimeError("handler bug")

    @r.message(lambda ctx: ctx.text.startswith("oops"))
    async def oops(ctx: Context):
        raise UserError("没看懂")

    @r.message()
    async def echo(ctx: Context):
        if seen is not None:
            seen.append(ctx)
        ctx.session.add(AuditEvent(at=ctx.now, action="echo", target=str(ctx.inbound_id), detail={}))
        return [ctx.reply("echo: " + ctx.text)]

    return Dispatcher([r])


def msg(clock, text="hi", msg_id="m1", sender="zhang", channel="console", chat=None, kind="text"):
    return Inbound(channel=channel, msg_id=msg_id, sender_id=sender, text=text, sent_at=clock.now(),
                   chat_id=chat, kind=kind)


async def seed(db) -> None:
    async with db.session() as s:
        st = Street(name="天桥街道")
        s.add(st)
        await s.flush()
        c = Community(name="北园社区", street_id=st.id)
        s.add(c)
        await s.flush()
        g = Grid(name="北园1网格", community_id=c.id)
        s.add(g)
        await s.flush()
        b = Building(name="3号楼", number="3", grid_id=g.id, chat_id="chat-3", channel="aibot")
        s.add(b)
        await s.flush()
        h = Household(building_id=b.id, unit="2", room="501")
        s.add(h)
        await s.flush()
        s.add(Resident(household_id=h.id, name="张三", channel="wecom", channel_user_id="zhang"))


@pytest.fixture
def rt(db, settings, clock):
    return build_runtime(settings, clock, db=db, dispatcher=echo_dispatcher())


async def count(db, model, *where) -> int:
    async with db.session() as s:
        return await s.scalar(select(func.count()).select_from(model).where(*where))


async def test_handle_now_replies_through_console(rt, clock):
    rows = await handle_now(rt, msg(clock, "你好 🌸 ok"))
    assert [(r.to_user, r.text, r.status) for r in rows] == [("zhang", "echo: 你好 🌸 ok", "sent")]
    assert [d.text for d in rt.channels["console"].transcript] == ["echo: 你好 🌸 ok"]
    async with rt.db.session() as s:
        row = (await s.scalars(select(InboundMessage))).one()
        assert (row.status, row.attempts) == ("done", 1)


async def test_duplicate_msg_id_changes_nothing(rt, clock):
    assert len(await handle_now(rt, msg(clock))) == 1
    assert await handle_now(rt, msg(clock)) == []
    # Even with the fast dedup key gone (Redis flushed, process restarted), the inbox's unique
    # constraint holds.
    await rt.state.delete("dedup:console:m1")
    assert await handle_now(rt, msg(clock)) == []
    assert await count(rt.db, InboundMessage) == 1
    assert await count(rt.db, AuditEvent) == 1
    assert await count(rt.db, OutboundMessage) == 1


async def test_user_error_becomes_a_reply(rt, clock):
    rows = await handle_now(rt, msg(clock, "oops"))
    assert [r.text for r in rows] == ["没看懂"]


async def test_handler_exception_is_retried_then_parked(rt, clock, caplog):
    rows = await handle_now(rt, msg(clock, "boom 13912345678"))
    assert rows == []
    async with rt.db.session() as s:
        row = (await s.scalars(select(InboundMessage))).one()
        assert (row.status, row.attempts, row.error) == ("pending", 1, "RuntimeError")
    for _ in range(10):
        clock.advance(timedelta(minutes=15))
        await rt.pipeline.process_due()
    async with rt.db.session() as s:
        row = (await s.scalars(select(InboundMessage))).one()
        assert (row.status, row.attempts) == ("failed", rt.pipeline.max_attempts)
    assert "13912345678" not in caplog.text and "boom" not in caplog.text
    assert f"inbox row {row.id} parked as failed" in caplog.text


async def test_worker_killed_before_commit_reprocesses_once(rt, clock):
    calls = 0

    async def die(job):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise asyncio.CancelledError  # the worker is killed after the handler ran

    rt.pipeline.before_commit = die
    with pytest.raises(asyncio.CancelledError):
        await handle_now(rt, msg(clock, "3-2-501 36.5"))
    assert await count(rt.db, AuditEvent) == 0
    assert await count(rt.db, OutboundMessage) == 0
    assert await rt.pipeline.process_due() == 0  # still under its lease
    clock.advance(timedelta(minutes=1))
    assert await rt.pipeline.process_due() == 1
    assert await rt.pipeline.process_due() == 0
    await rt.sender.deliver_due()
    assert await count(rt.db, AuditEvent) == 1
    assert await count(rt.db, OutboundMessage, OutboundMessage.status == "sent") == 1
    assert len(rt.channels["console"].transcript) == 1


async def test_identity_resolves_across_wecom_channels(db, settings, clock):
    seen: list[Context] = []
    rt = build_runtime(settings, clock, db=db, dispatcher=echo_dispatcher(seen))
    await seed(db)
    await handle_now(rt, msg(clock, "hi", msg_id="a", sender="zhang", channel="aibot", chat="chat-3"))
    await handle_now(rt, msg(clock, "hi", msg_id="b", sender="stranger", channel="console"))
    known, unknown = seen
    assert known.resident is not None and known.resident.name == "张三"
    assert known.household is not None and known.household.label == "3-2-501"
    assert known.building is not None and known.building.name == "3号楼"
    assert known.staff is None
    assert unknown.resident is None and unknown.staff is None and unknown.building is None


async def test_text_messages_reach_the_handlers_parsed(rt, clock):
    seen: list[Context] = []
    rt.dispatcher = echo_dispatcher(seen)
    await handle_now(rt, msg(clock, "体温36.5 正常"))
    assert seen[0].parsed is not None and seen[0].parsed.checkin == "safe"


async def test_per_sender_lock_serialises_one_sender(db, settings, clock):
    active, peak = 0, 0
    r = Router("slow")

    @r.message()
    async def slow(ctx: Context):
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.05)
        active -= 1
        return [ctx.reply("ok")]

    rt = build_runtime(settings, clock, db=db, dispatcher=Dispatcher([r]))
    ids = [await rt.pipeline.accept(msg(clock, "x", msg_id=f"m{i}")) for i in range(3)]
    await asyncio.gather(*(rt.pipeline.process(i) for i in ids))
    assert peak == 1
    assert await count(db, InboundMessage, InboundMessage.status == "done") == 3


async def test_background_workers_and_sender(rt, clock):
    rt.pipeline.start()
    rt.sender.start()
    try:
        for i in range(5):
            await rt.pipeline.accept(msg(clock, f"t{i}", msg_id=f"bg{i}", sender=f"u{i}"))
        for _ in range(200):
            if len(rt.channels["console"].transcript) == 5:
                break
            await asyncio.sleep(0.02)
    finally:
        await rt.pipeline.stop()
        await rt.sender.stop()
    assert sorted(d.text for d in rt.channels["console"].transcript) == [f"echo: t{i}" for i in range(5)]


async def test_database_down_refuses_instead_of_losing(settings, clock):
    from storage.db import Database

    db = Database("postgresql+asyncpg://postgres@127.0.0.1:1/none", pool_pre_ping=False)  # nothing listens
    rt = build_runtime(settings, clock, db=db, dispatcher=echo_dispatcher())
    with pytest.raises(Exception):  # noqa: B017 - any database error; the callback answers 503
        await rt.pipeline.accept(msg(clock))
    # Not remembered as seen: WeCom's retry must be stored once the database is back.
    assert await rt.state.seen("dedup:console:m1", 60) is False
    await db.dispose()


async def test_redis_stream_inbox_shares_work(db, settings, clock, redis_client):
    state = RedisState(redis_client, prefix=redis_client.test_prefix)
    rt = build_runtime(settings, clock, db=db, state=state, dispatcher=echo_dispatcher())
    inbox = rt.pipeline.inbox
    rid = await rt.pipeline.accept(msg(clock, "hello", msg_id="s1"))
    assert await redis_client.xlen(inbox.stream) == 1
    # A consumer that reads and dies without acknowledging: its entry is claimed by another.
    got = await inbox.read("dead-consumer", block_ms=10)
    assert [r for _, r in got] == [rid]
    inbox.lease_s = 0.05
    await asyncio.sleep(0.1)
    claimed = await inbox.claim_stale("alive")
    assert [r for _, r in claimed] == [rid]
    rt.pipeline.start()
    rt.sender.start()
    try:
        await rt.pipeline.accept(msg(clock, "second", msg_id="s2"))
        for _ in range(300):
            if await count(db, InboundMessage, InboundMessage.msg_id == "s2", InboundMessage.status == "done"):
                break
            await asyncio.sleep(0.02)
    finally:
        await rt.pipeline.stop()
        await rt.sender.stop()
    async with db.session() as s:
        done = (await s.scalars(select(InboundMessage.msg_id).where(InboundMessage.status == "done"))).all()
    assert "s2" in done
