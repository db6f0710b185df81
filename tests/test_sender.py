"""The outbox sender: leases, retries, ordering, give-up, unknown channels — with a scripted channel."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.app import build_runtime
from bot.channels.base import Delivery, SendError
from bot.dispatch import Dispatcher
from bot.model import Outbound
from bot.outbox import enqueue
from storage.models import OutboundMessage


class Scripted:
    """A channel whose sends fail as the test says; it records what it delivered."""

    name = "script"

    def __init__(self) -> None:
        self.delivered: list[str] = []
        self.failures: dict[str, list[SendError]] = {}

    def setup_routes(self, app) -> None:  # pragma: no cover - no routes
        return None

    async def pace(self, d: Delivery) -> float:
        return 0.0

    async def send(self, d: Delivery) -> None:
        queue = self.failures.get(d.text)
        if queue:
            raise queue.pop(0)
        self.delivered.append(d.text)

    async def close(self) -> None:
        return None


@pytest.fixture
def rt(db, settings, clock):
    r = build_runtime(settings, clock, db=db, dispatcher=Dispatcher([]))
    r.channels["script"] = Scripted()
    return r


async def put(rt, *texts: str, channel: str = "script", to: str = "u1") -> None:
    async with rt.db.session() as s:
        await enqueue(s, [Outbound(channel=channel, to_user=to, text=t) for t in texts], rt.clock.now())


async def all_rows(rt) -> list[OutboundMessage]:
    async with rt.db.session() as s:
        return list((await s.scalars(select(OutboundMessage).order_by(OutboundMessage.id))).all())


async def test_a_sender_that_died_mid_send_is_replaced_after_the_lease(rt):
    await put(rt, "a", "b")
    claimed = await rt.sender._claim()  # ... and the process dies here, before sending
    assert [d.text for d in claimed] == ["a", "b"]
    assert await rt.sender.run_once() == 0  # leased: nobody else takes them yet
    rt.clock.advance(rt.sender.lease + timedelta(seconds=1))
    await rt.sender.deliver_due()
    assert rt.channels["script"].delivered == ["a", "b"]
    assert [r.status for r in await all_rows(rt)] == ["sent", "sent"]


async def test_one_recipient_keeps_its_order_behind_a_failure(rt):
    rt.channels["script"].failures["first"] = [SendError("45009:too often", retry_after=30)]
    await put(rt, "first", "second")
    await put(rt, "other", to="u2")
    await rt.sender.deliver_due()
    assert rt.channels["script"].delivered == ["other"]
    first, second, _ = await all_rows(rt)
    assert (first.status, first.attempts, second.status, second.attempts) == ("pending", 1, "pending", 0)
    rt.clock.advance(timedelta(seconds=31))
    await rt.sender.deliver_due()
    assert rt.channels["script"].delivered == ["other", "first", "second"]


async def test_retryable_failures_give_up_after_a_day(rt):
    rt.channels["script"].failures["x"] = [SendError("http_502")] * 1000
    await put(rt, "x")
    for _ in range(200):
        rt.clock.advance(timedelta(minutes=10))
        await rt.sender.deliver_due()
    (row,) = await all_rows(rt)
    assert row.status == "failed" and row.last_error.startswith("gave up after")
    assert rt.channels["script"].delivered == []


async def test_permanent_failure_and_unconfigured_channel(rt):
    rt.channels["script"].failures["bad"] = [SendError("81013:user not found", permanent=True)]
    await put(rt, "bad")
    await put(rt, "nowhere", channel="wecom")
    await rt.sender.deliver_due()
    bad, nowhere = await all_rows(rt)
    assert (bad.status, bad.last_error) == ("failed", "81013:user not found")
    assert nowhere.status == "failed" and "'wecom' is not configured" in nowhere.last_error


async def test_adapter_bug_is_retried_not_fatal(rt):
    class Boom(Scripted):
        async def send(self, d: Delivery) -> None:
            raise KeyError("bug")

    rt.channels["script"] = Boom()
    await put(rt, "x")
    await rt.sender.deliver_due()
    (row,) = await all_rows(rt)
    assert (row.status, row.last_error) == ("pending", "KeyError")


async def test_two_senders_on_postgres_never_send_twice(pg_db, settings, clock):
    """FOR UPDATE SKIP LOCKED: two senders (as two processes would) share the rows without overlap."""
    a = build_runtime(settings, clock, db=pg_db, dispatcher=Dispatcher([]))
    b = build_runtime(settings, clock, db=pg_db, dispatcher=Dispatcher([]))
    shared = Scripted()
    a.channels["script"] = b.channels["script"] = shared
    a.sender.batch = b.sender.batch = 7
    await put(a, *[f"m{i}" for i in range(100)])
    import asyncio

    await asyncio.gather(a.sender.deliver_due(), b.sender.deliver_due())
    assert sorted(shared.delivered) == sorted(f"m{i}" for i in range(100))
