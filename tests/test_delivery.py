"""Delivery you can trust: an alert that cannot be delivered on a staff member's channel is tried on
their next one; with none left it is an ERROR (escalation and staff id, no health data), /healthz
says degraded, the dashboard shows a red banner, and the escalation goes up the chain at once.

Through the real pipeline (tests/testbot.py): the test runtime has the console channel and no WeCom
app, so a staff member "on wecom" is exactly the unconfigured case of a bridge-only community.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest_asyncio
from sqlalchemy import select, update

from bot.app import build_app, warn_unreachable
from storage.models import Escalation, OutboundMessage, Staff
from storage.staffauth import hash_password
from tests.testbot import make_bot


@pytest_asyncio.fixture
async def any_bot(db, clock):
    """SQLite and the real PostgreSQL."""
    return await make_bot(db, clock)


async def set_channels(tb, key: str, channel: str, alt: list[tuple[str, str]] = ()) -> None:
    async with tb.db.session() as s:
        await s.execute(update(Staff).where(Staff.id == tb.seed.ids[key]).values(
            channel=channel, alt_channels=[{"channel": c, "id": i} for c, i in alt]))


async def escalations(tb) -> list[Escalation]:
    async with tb.db.session() as s:
        return list((await s.scalars(select(Escalation).order_by(Escalation.id))).unique().all())


def rows_to(tb, user: str) -> list[OutboundMessage]:
    return [r for r in tb.sent if r.to_user == user]


async def test_an_alert_on_an_unconfigured_channel_reaches_the_next_one(any_bot, caplog):
    tb = any_bot
    await set_channels(tb, "zhangwei", "wecom", [("console", "zhangwei")])  # 渠道 "wecom、console"
    tb.at(9, 10)
    with caplog.at_level(logging.WARNING):
        await tb.say("wangfang", "我发烧了38.5度", chat="g3")
    [esc] = await escalations(tb)
    first, second = rows_to(tb, "zhangwei")
    assert (first.channel, first.status, first.escalation_id) == ("wecom", "failed", esc.id)
    assert "not configured" in first.last_error
    assert (second.channel, second.status, second.escalation_id) == ("console", "sent", esc.id)
    assert second.text == first.text and f"E{esc.id}" in second.text and "38.5" in second.text
    assert second.dedup_key == first.dedup_key + ">console"
    # delivered: the chain keeps its 15 minutes
    assert esc.level == 0 and esc.deadline_at == tb.clock.now() + timedelta(minutes=15)
    assert tb.to("chengang") == [] and tb.to("liuyi") == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "38.5" not in caplog.text and "王芳" not in caplog.text

    # a second sweep or delivery round sends nothing again
    assert await tb.sweep() == []


async def test_with_no_channel_left_the_chain_moves_on_at_once(any_bot, caplog):
    tb = any_bot
    await set_channels(tb, "zhangwei", "wecom")  # the example roster's staff: all on wecom
    tb.at(9, 10)
    with caplog.at_level(logging.INFO):
        await tb.say("wangfang", "我发烧了38.5度，还咳嗽", chat="g3")
    [esc] = await escalations(tb)
    [alert] = rows_to(tb, "zhangwei")
    assert (alert.status, alert.escalation_id) == ("unreachable", esc.id)
    # at once, not after 15 minutes: the grid leader and the grid's medic are told
    assert esc.level == 1 and esc.deadline_at == esc.opened_at + timedelta(minutes=30)
    for who in ("chengang", "liuyi"):
        assert f"E{esc.id}" in tb.last_to(who) and "38.5" in tb.last_to(who)
        # told why it came early, and not that the worker had it
        assert "网格员张伟收不到消息" in tb.last_to(who) and "已通知" not in tb.last_to(who)
    assert tb.to("sunmin") == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    line = errors[0].getMessage()
    assert f"E{esc.id}" in line and f"staff {tb.seed.ids['zhangwei']}" in line
    for private in ("38.5", "咳嗽", "王芳", "3-2-501", "发烧"):
        assert private not in caplog.text
    assert tb.rt.metrics.alerts_undeliverable._value.get() == 1

    # the next level climbs on its own schedule (30 minutes from the report), once
    assert await tb.sweep() == []
    tb.clock.advance(timedelta(minutes=30))
    assert [r.to_user for r in await tb.sweep()] == ["sunmin"]
    assert "已30分钟无人确认（已通知：陈刚、刘医生）（网格员张伟收不到消息" in tb.last_to("sunmin")


async def test_healthz_and_the_dashboard_say_so_until_it_is_closed(sqlite_db, clock, aiohttp_client):
    tb = await make_bot(sqlite_db, clock)
    client = await aiohttp_client(build_app(tb.rt, background=False))
    resp = await client.get("/healthz")
    assert (resp.status, await resp.text()) == (200, "ok")

    await set_channels(tb, "zhangwei", "wecom")
    await tb.say("wangfang", "我发烧了38.5度", chat="g3")
    [esc] = await escalations(tb)
    resp = await client.get("/healthz")
    body = await resp.text()
    assert resp.status == 200 and body.startswith("degraded") and "1 escalations" in body
    assert "38.5" not in body

    # the dashboard: the count and codes in scope (one grid's leader), nothing for another grid
    async with tb.db.session() as s:
        for key in ("chengang", "zhaoqiang"):
            st = await s.get(Staff, tb.seed.ids[key])
            st.password_hash = hash_password("pw-" + key)

    async def health_of(user: str) -> dict:
        client.session.cookie_jar.clear()
        r = await client.post("/api/login", json={"user": user, "password": "pw-" + user})
        assert r.status == 200, await r.text()
        me = await (await client.get("/api/me")).json()
        got = await (await client.get("/api/health")).json()
        assert me["unreachable"] == got["unreachable"]
        return got["unreachable"]

    assert await health_of("chengang") == {"count": 1, "escalations": [f"E{esc.id}"]}
    assert await health_of("zhaoqiang") == {"count": 0, "escalations": []}
    page = await (await client.get("/dashboard/")).text()
    assert 'id="unreachable"' in page and "/api/health" in page

    await tb.say("chengang", f"完成 E{esc.id} 已电话联系")
    resp = await client.get("/healthz")
    assert await resp.text() == "ok"


async def test_a_permanent_refusal_is_tried_on_the_next_channel_too(any_bot):
    from bot.channels.base import SendError

    tb = any_bot
    console = tb.rt.channels["console"]
    real_send = console.send

    async def send(d):
        if d.to_user == "zhangwei" and d.channel == "console":
            raise SendError("81013:user not found", permanent=True)
        await real_send(d)

    console.send = send
    await set_channels(tb, "zhangwei", "console", [("console", "zw2")])  # 微信ID "zhangwei、zw2"
    await tb.say("wangfang", "我发烧了38.5度", chat="g3")
    assert [r.status for r in rows_to(tb, "zhangwei")] == ["failed"]
    [again] = rows_to(tb, "zw2")
    assert again.status == "sent" and "38.5" in again.text
    [esc] = await escalations(tb)
    assert esc.level == 0


async def test_an_acknowledged_escalation_does_not_climb_but_health_still_says_so(any_bot):
    tb = any_bot
    await tb.say("wangfang", "我发烧了38.5度", chat="g3")
    [esc] = await escalations(tb)
    await tb.say("zhangwei", f"收到 E{esc.id}")
    # the leader cannot be reached: the update of a higher reading goes to the one on it only,
    # so make the worker the unreachable one and report a higher reading
    await set_channels(tb, "zhangwei", "wecom")
    await tb.say("wangfang", "现在39.2度", chat="g3")
    [esc] = await escalations(tb)
    assert esc.status == "acked" and esc.level == 0
    assert rows_to(tb, "zhangwei")[-1].status == "unreachable"
    async with tb.db.session() as s:
        from storage.queries import undeliverable_escalations

        assert await undeliverable_escalations(s) == [esc.id]


async def test_serve_warns_of_staff_with_no_configured_channel(sqlite_db, clock, caplog):
    tb = await make_bot(sqlite_db, clock)
    await set_channels(tb, "zhangwei", "wecom")
    await set_channels(tb, "zhaoqiang", "wecom", [("bridge", "wxid_zq")])
    await set_channels(tb, "qianjun", "wecom", [("console", "qianjun")])  # reachable
    async with tb.db.session() as s:
        await s.execute(update(Staff).where(Staff.id == tb.seed.ids["zhaoqiang"]).values(phone="13800001111"))
    with caplog.at_level(logging.WARNING, logger="bot.app"):
        ids = await warn_unreachable(tb.rt)
    assert ids == sorted([tb.seed.ids["zhangwei"], tb.seed.ids["zhaoqiang"]])
    [rec] = [r for r in caplog.records if r.levelno == logging.WARNING]
    line = rec.getMessage()
    assert line.startswith("2 staff members") and "bridge, wecom" in line
    assert f"{tb.seed.ids['zhangwei']}, {tb.seed.ids['zhaoqiang']}" in line
    assert "13800001111" not in line and "张伟" not in line


async def test_everyone_reachable_means_no_warning(sqlite_db, clock, caplog):
    tb = await make_bot(sqlite_db, clock)
    with caplog.at_level(logging.WARNING, logger="bot.app"):
        assert await warn_unreachable(tb.rt) == []
    assert not caplog.records


async def test_a_bridge_only_community_reaches_a_wecom_worker_on_the_bridge(sqlite_db, clock, aiohttp_client):
    """The issue's case: the roster's staff are on `wecom`, the community runs only the bridge; a
    worker listed as "wecom、bridge" gets the fever alert through the gateway."""
    import json

    from bot.channels.bridge import sign
    from storage.models import Building, InboundMessage, Resident
    from tests.fakewecom import FakeWeCom

    fake = FakeWeCom()
    await fake.start()
    try:
        tb = await make_bot(sqlite_db, clock, bridge_secret="s3cret", bridge_send_url=fake.base_url + "/gateway/send")
        assert "wecom" not in tb.rt.channels and "bridge" in tb.rt.channels
        async with tb.db.session() as s:
            await s.execute(update(Building).values(channel="bridge"))
            await s.execute(update(Resident).where(Resident.channel_user_id.is_not(None)).values(channel="bridge"))
            await s.execute(update(Staff).values(channel="wecom"))  # as the example roster has them
        await set_channels(tb, "zhangwei", "wecom", [("bridge", "wxid_zw")])
        client = await aiohttp_client(build_app(tb.rt, background=False))
        body = json.dumps({"msg_id": "b1", "chat_id": "g3", "chat_name": "3号楼", "sender_id": "wangfang",
                           "sender_name": "王芳", "text": "我发烧了38.5度", "ts": int(clock.now().timestamp())},
                          ensure_ascii=False).encode()
        ts = str(int(clock.now().timestamp()))
        resp = await client.post("/bridge/events", data=body, headers={
            "X-Gridbot-Timestamp": ts, "X-Gridbot-Signature": sign("s3cret", ts, body),
            "Content-Type": "application/json"})
        assert resp.status == 200
        async with tb.db.session() as s:
            [row_id] = (await s.scalars(select(InboundMessage.id))).all()
        await tb.rt.pipeline.process(row_id)
        await tb.rt.sender.deliver_due()
        to_worker = [x for x in fake.sends if x.body.get("user_id") == "wxid_zw"]
        assert len(to_worker) == 1 and "38.5" in to_worker[0].body["text"]
        [esc] = await escalations(tb)
        assert esc.level == 0  # delivered: no hurry
        assert await (await client.get("/healthz")).text() == "ok"
    finally:
        await fake.close()
