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
