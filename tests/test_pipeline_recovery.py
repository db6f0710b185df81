"""A database that goes away for a while: callbacks are refused (not lost), and the background
workers and the sender carry on by themselves once it is back."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from bot.app import build_runtime
from bot.dispatch import Context, Dispatcher, Router
from bot.model import Inbound
from storage.db import Database


def echo() -> Dispatcher:
    r = Router("echo")

    @r.message()
    async def reply(ctx: Context):
        return [ctx.reply("echo: " + ctx.text)]

    return Dispatcher([r])


async def test_workers_and_sender_recover_after_an_outage(sqlite_db, settings, clock):
    rt = build_runtime(settings, clock, db=sqlite_db, dispatcher=echo())
    rt.pipeline.sweep_s = 0.05
    rt.sender.poll_s = 0.05
    good = sqlite_db
    await rt.pipeline.accept(Inbound(channel="console", msg_id="before", sender_id="u1", text="one",
                                     sent_at=clock.now()))
    dead = Database("postgresql+asyncpg://postgres@127.0.0.1:1/none")

    def use(db: Database) -> None:
        rt.db = db
        rt.pipeline.inbox.db = db

    use(dead)
    rt.pipeline.start()
    rt.sender.start()
    try:
        # During the outage: a new callback is refused (the platform retries), nothing is lost.
        with pytest.raises(OSError):
            await rt.pipeline.accept(Inbound(channel="console", msg_id="during", sender_id="u2", text="two",
                                             sent_at=clock.now()))
        rt.pipeline._offer(1)  # the worker tries the stored row and fails against the dead database
        await asyncio.sleep(0.3)
        assert rt.channels["console"].transcript == []
        use(good)
        # WeCom's retry of the refused callback now lands.
        await rt.pipeline.accept(Inbound(channel="console", msg_id="during", sender_id="u2", text="two",
                                         sent_at=clock.now()))
        clock.advance(timedelta(minutes=1))  # the first row's lease runs out: the sweep takes it
        for _ in range(300):
            if len(rt.channels["console"].transcript) == 2:
                break
            await asyncio.sleep(0.02)
    finally:
        await rt.pipeline.stop()
        await rt.sender.stop()
        await dead.dispose()
    assert sorted(d.text for d in rt.channels["console"].transcript) == ["echo: one", "echo: two"]


async def test_postgres_connections_killed_by_the_server_are_replaced(pg_db, settings, clock):
    """The server drops every connection (a restart, a failover): pooled connections are dead, the
    next attempt fails, and the row is processed on its retry — nothing lost, nothing doubled."""
    from sqlalchemy import func, select, text

    from storage.models import InboundMessage, OutboundMessage

    rt = build_runtime(settings, clock, db=pg_db, dispatcher=echo())
    rt.pipeline.sweep_s = 0.05
    rt.sender.poll_s = 0.05
    rt.pipeline.start()
    rt.sender.start()
    try:
        await rt.pipeline.accept(Inbound(channel="console", msg_id="a", sender_id="u1", text="one",
                                         sent_at=clock.now()))
        for _ in range(300):
            if rt.channels["console"].transcript:
                break
            await asyncio.sleep(0.02)
        # Kill every other connection to this database from the server side.
        killer = Database(pg_db.url)
        async with killer.engine.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        await killer.dispose()
        for _attempt in range(20):
            try:
                await rt.pipeline.accept(Inbound(channel="console", msg_id="b", sender_id="u2", text="two",
                                                 sent_at=clock.now()))
                break
            except Exception:  # noqa: BLE001 - the platform would retry the refused callback
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("callback still refused after 20 tries")

        async def sent() -> int:
            async with pg_db.session() as s:
                return await s.scalar(select(func.count()).select_from(OutboundMessage)
                                      .where(OutboundMessage.status == "sent"))

        for _ in range(600):
            if await sent() == 2:  # delivered AND recorded as delivered
                break
            clock.advance(timedelta(seconds=30))  # let leases and backoffs run out
            await asyncio.sleep(0.02)
    finally:
        await rt.pipeline.stop()
        await rt.sender.stop()
    assert sorted(d.text for d in rt.channels["console"].transcript) == ["echo: one", "echo: two"]
    async with pg_db.session() as s:
        assert await s.scalar(select(func.count()).select_from(InboundMessage)) == 2
    assert await sent() == 2
