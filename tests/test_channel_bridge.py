"""The bridge channel: signed JSON in, signed and paced JSON out."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.app import build_app, build_runtime
from bot.channels.bridge import sign
from bot.config import Settings
from bot.dispatch import Context, Dispatcher, Router
from bot.model import Outbound
from bot.outbox import enqueue
from storage.models import InboundMessage, OutboundMessage
from tests.fakewecom import FakeWeCom

SECRET = "bridge-secret"


def dispatcher() -> Dispatcher:
    r = Router("t")

    @r.message()
    async def echo(ctx: Context):
        return [ctx.reply_in_chat("收到：" + ctx.text)]

    return Dispatcher([r])


@pytest.fixture
async def fake():
    f = FakeWeCom()
    await f.start()
    yield f
    await f.close()


@pytest.fixture
async def bridge(db, tmp_path, clock, fake, aiohttp_client):
    s = Settings(database_url="sqlite://", bridge_secret=SECRET, bridge_send_url=fake.base_url + "/gateway/send",
                 bridge_rate=5, bridge_bot_id="wxid_bot")
    rt = build_runtime(s, clock, db=db, dispatcher=dispatcher())
    return rt, await aiohttp_client(build_app(rt, background=False))


def event(msg_id="w1", chat_id="wxgroup-3", sender="wxid_zhang", text="3-2-501 36.5 正常", **kw) -> bytes:
    d = {"msg_id": msg_id, "chat_id": chat_id, "chat_name": "3号楼", "sender_id": sender, "sender_name": "张三",
         "text": text, "ts": 1770678000}
    d.update(kw)
    return json.dumps(d, ensure_ascii=False).encode()


async def post(client, clock, body: bytes, ts: int | None = None, secret: str = SECRET, sig: str | None = None):
    t = str(ts if ts is not None else int(clock.now().timestamp()))
    headers = {"X-Gridbot-Timestamp": t, "X-Gridbot-Signature": sig if sig is not None else sign(secret, t, body),
               "Content-Type": "application/json"}
    return await client.post("/bridge/events", data=body, headers=headers)


async def inbox(rt):
    async with rt.db.session() as s:
        return (await s.scalars(select(InboundMessage).order_by(InboundMessage.id))).all()


async def test_event_stored_handled_and_reply_signed(bridge, clock, fake):
    rt, client = bridge
    resp = await post(client, clock, event(text="全家都好 👍 ไทย"))
    assert resp.status == 200 and (await resp.json())["duplicate"] is False
    assert (await (await post(client, clock, event(text="全家都好 👍 ไทย"))).json())["duplicate"] is True
    (row,) = await inbox(rt)
    assert (row.chat_id, row.sender_id, row.sender_name, row.chat_name) == ("wxgroup-3", "wxid_zhang", "张三", "3号楼")
    await rt.pipeline.process(row.id)
    await rt.sender.deliver_due()
    (sent,) = fake.sends
    async with rt.db.session() as s:
        out = (await s.scalars(select(OutboundMessage))).one()
    assert sent.body == {"chat_id": "wxgroup-3", "text": "收到：全家都好 👍 ไทย", "id": out.id}
    t = sent.headers["X-Gridbot-Timestamp"]
    assert sent.headers["X-Gridbot-Signature"] == sign(SECRET, t, sent.raw)


async def test_private_message(bridge, clock, fake):
    rt, client = bridge
    for i, chat in enumerate(("", None)):
        assert (await post(client, clock, event(msg_id=f"p{i}", chat_id=chat))).status == 200
    rows = await inbox(rt)
    assert [r.chat_id for r in rows] == [None, None]
    for r in rows:
        await rt.pipeline.process(r.id)
    await rt.sender.deliver_due()
    assert [set(s.body) for s in fake.sends] == [{"user_id", "text", "id"}] * 2


@pytest.mark.parametrize("case", ["forged", "missing", "other_secret", "stale", "future", "garbage_ts"])
async def test_bad_signatures_are_403(bridge, clock, case):
    rt, client = bridge
    body = event()
    now = int(clock.now().timestamp())
    kw = {"forged": dict(sig="0" * 64), "missing": dict(sig=""), "other_secret": dict(secret="nope"),
          "stale": dict(ts=now - 301), "future": dict(ts=now + 301), "garbage_ts": dict(ts="abc")}[case]
    assert (await post(client, clock, body, **kw)).status == 403
    assert await inbox(rt) == []


@pytest.mark.parametrize("body, status", [
    (b"{not json", 400), (b"[1,2]", 400), (json.dumps({"msg_id": "x", "text": "t"}).encode(), 400),
    (json.dumps({"msg_id": "x", "sender_id": "s"}).encode(), 400),
    (json.dumps({"msg_id": "x", "sender_id": "s", "text": "t", "chat_id": 5}).encode(), 400),
    (b"\xff\xfe\x00", 400), (b'{"text": "' + b"a" * 100_000 + b'"}', 413),
])
async def test_malformed_events(bridge, clock, body, status):
    rt, client = bridge
    assert (await post(client, clock, body)).status == status
    assert await inbox(rt) == []


async def test_own_messages_ignored(bridge, clock):
    rt, client = bridge
    assert (await post(client, clock, event(sender="wxid_bot"))).status == 200
    assert await inbox(rt) == []


async def test_sends_are_paced_per_chat(bridge, clock, fake):
    rt, client = bridge
    async with rt.db.session() as s:
        await enqueue(s, [Outbound(channel="bridge", to_chat="g1", text=f"n{i}") for i in range(7)], clock.now())
    await rt.sender.deliver_due()
    assert [s.text for s in fake.sends] == [f"n{i}" for i in range(5)]  # bridge_rate = 5 a minute
    async with rt.db.session() as s:
        waiting = (await s.scalars(select(OutboundMessage).where(OutboundMessage.status == "pending"))).all()
    assert len(waiting) == 2 and all(r.attempts == 0 for r in waiting)


async def test_gateway_failure_retries_without_duplicates(bridge, clock, fake):
    rt, client = bridge
    fake.fail_next(503)
    async with rt.db.session() as s:
        await enqueue(s, [Outbound(channel="bridge", to_user="wxid_a", text="hello")], clock.now())
    await rt.sender.deliver_due()
    assert fake.sends == []
    clock.advance(timedelta(minutes=1))
    await rt.sender.deliver_due()
    assert [s.text for s in fake.sends] == ["hello"]


async def test_not_configured_route_says_what_to_set(sqlite_db, settings, clock, aiohttp_client):
    rt = build_runtime(settings, clock, db=sqlite_db, dispatcher=dispatcher())
    client = await aiohttp_client(build_app(rt, background=False))
    resp = await client.post("/bridge/events", data=b"{}")
    assert resp.status == 404 and "GRIDBOT_BRIDGE_SECRET" in await resp.text()
    resp = await client.post("/wecom/callback", data=b"{}")
    assert resp.status == 404 and "GRIDBOT_WECOM_CORP_ID" in await resp.text()
