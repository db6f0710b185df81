"""End to end through the WeCom app channel: an encrypted callback (wechatpy's own crypto) to a running
app built by build_app, its inbox workers and outbox sender running, against the fake WeCom API.

"A quarantined resident writes 我发烧了38.5度，还咳嗽 → the grid worker's phone gets it" — and the
time from the callback POST to the worker's message at the (fake) WeCom API is measured.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import func, select, update

from bot.app import build_app, build_runtime
from bot.config import Settings
from storage.models import CheckIn, Escalation, InboundMessage, OutboundMessage, Resident, Staff
from tests.fakewecom import FakeWeCom, encrypt_xml_callback, text_xml
from tests.testbot import community

TOKEN, AES, CORP = "tok3n", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wwfakecorp"
MEASURED: dict[str, float] = {}


@pytest.fixture
async def fake():
    f = FakeWeCom(corp_id=CORP, secret="fake-secret")
    await f.start()
    yield f
    await f.close()


@pytest.fixture
async def running(sqlite_db, tmp_path, clock, fake, aiohttp_client):
    seed = await community(sqlite_db)
    async with sqlite_db.session() as s:  # everyone on the WeCom app
        await s.execute(update(Staff).values(channel="wecom"))
        await s.execute(update(Resident).where(Resident.channel_user_id.is_not(None)).values(channel="wecom"))
    settings = Settings(database_url=sqlite_db.url, wecom_corp_id=CORP, wecom_agent_id="1000002",
                        wecom_secret="fake-secret", wecom_token=TOKEN, wecom_aes_key=AES,
                        wecom_api_base=fake.base_url, confirm="all")
    rt = build_runtime(settings, clock, db=sqlite_db, workers=2)
    # the app's own workers and sender, without the scheduler (its timed jobs are not under test)
    client = await aiohttp_client(build_app(rt, background=False))
    rt.pipeline.start()
    rt.sender.start()
    yield rt, client, seed
    await rt.pipeline.stop()
    await rt.sender.stop()


async def post(client, clock, sender: str, text: str, msg_id: int):
    ts = int(clock.now().timestamp())
    params, body = encrypt_xml_callback(TOKEN, AES, CORP, text_xml(sender, text, msg_id, ts, CORP), ts)
    return await client.post("/wecom/callback", params=params, data=body)


async def wait_for(pred, timeout: float = 5.0) -> float:
    """Polls an event that happens in other tasks (not a schedule); returns seconds waited."""
    t0 = time.perf_counter()
    while not pred():
        if time.perf_counter() - t0 > timeout:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.001)
    return time.perf_counter() - t0


async def test_quarantined_fever_reaches_worker_and_team_within_a_second(running, fake, clock):
    rt, client, seed = running
    # a first message warms the process up (parser dictionary, token, connections), as in production
    await post(client, clock, "zhaoliu", "7-1-201 36.6 正常", 9000)
    await wait_for(lambda: fake.sent_to("zhaoliu"))
    t0 = time.perf_counter()
    resp = await post(client, clock, "chenjing", "我发烧了38.5度，还咳嗽", 9001)
    answered = time.perf_counter() - t0
    assert resp.status == 200
    await wait_for(lambda: fake.sent_to("zhangwei"))
    latency = time.perf_counter() - t0
    MEASURED["callback_to_worker_s"] = latency
    print(f"\ncallback answered in {answered * 1000:.1f} ms; worker's message at the fake API after "
          f"{latency * 1000:.1f} ms")
    assert latency < 1.0
    alert = fake.sent_to("zhangwei")[-1].text
    assert "38.5" in alert and "3-1-101" in alert and "居家隔离 第5天/共14天" in alert
    # the 1+4 team hears of it, and the resident gets a private acknowledgement
    await wait_for(lambda: all(fake.sent_to(u) for u in ("zhoutao", "wangjing", "huangyi", "chenjing")))
    assert "一小时后再测" in fake.sent_to("chenjing")[-1].text
    assert not any(s.kind == "appchat" for s in fake.sends), "nothing goes to a group"
    n_sends = len(fake.sends)

    # WeCom retries the same MsgId: nothing changes
    resp = await post(client, clock, "chenjing", "我发烧了38.5度，还咳嗽", 9001)
    assert resp.status == 200
    await asyncio.sleep(0.2)  # give a wrongly accepted retry time to show itself
    async with rt.db.session() as s:
        assert await s.scalar(select(func.count(InboundMessage.id))) == 2
        assert await s.scalar(select(func.count(Escalation.id))) == 1
    assert len(fake.sends) == n_sends


async def test_safe_report_escalates_nothing(running, fake, clock):
    rt, client, seed = running
    resp = await post(client, clock, "wangfang", "3-2-501 36.5 正常", 9002)
    assert resp.status == 200
    await wait_for(lambda: fake.sent_to("wangfang"))
    assert "已记录" in fake.sent_to("wangfang")[-1].text
    async with rt.db.session() as s:
        assert await s.scalar(select(func.count(CheckIn.id))) == 1
        assert await s.scalar(select(func.count(Escalation.id))) == 0
    assert fake.sent_to("zhangwei") == []


# --- delivery you can trust: a staff member's other channels, and an alert that reaches no one ----------


async def _staff_channels(rt, seed, key: str, channel: str, alt: list[tuple[str, str]] = ()) -> None:
    async with rt.db.session() as s:
        await s.execute(update(Staff).where(Staff.id == seed.ids[key]).values(
            channel=channel, alt_channels=[{"channel": c, "id": i} for c, i in alt]))


async def _outbox_to(rt, user: str, settled: int = 1, timeout: float = 5.0) -> list[OutboundMessage]:
    """The outbox rows to `user`, once at least `settled` of them are no longer pending or sending."""
    t0 = time.perf_counter()
    while True:
        async with rt.db.session() as s:
            rows = list((await s.scalars(select(OutboundMessage).where(OutboundMessage.to_user == user)
                                         .order_by(OutboundMessage.id))).all())
        if sum(r.status not in ("pending", "sending") for r in rows) >= settled:
            return rows
        if time.perf_counter() - t0 > timeout:
            raise AssertionError(f"outbox to {user}: {[(r.channel, r.status) for r in rows]}")
        await asyncio.sleep(0.005)


async def test_an_alert_on_an_unconfigured_channel_arrives_on_the_app(running, fake, clock):
    rt, client, seed = running
    await _staff_channels(rt, seed, "zhangwei", "bridge", [("wecom", "zhangwei")])  # 渠道 "bridge、wecom"
    resp = await post(client, clock, "chenjing", "我发烧了38.5度，还咳嗽", 9101)
    assert resp.status == 200
    await wait_for(lambda: fake.sent_to("zhangwei"))
    assert "38.5" in fake.sent_to("zhangwei")[-1].text
    rows = await _outbox_to(rt, "zhangwei", settled=2)
    assert [(r.channel, r.status) for r in rows] == [("bridge", "failed"), ("wecom", "sent")]
    async with rt.db.session() as s:
        assert (await s.scalar(select(Escalation))).level == 0


async def test_a_user_wecom_does_not_know_gets_it_on_the_next_channel(running, fake, clock):
    rt, client, seed = running
    fake.users = {"chenjing", "zhoutao", "wangjing", "huangyi", "chengang", "liuyi", "sunmin"}
    await _staff_channels(rt, seed, "zhangwei", "wecom", [("console", "zhangwei")])  # "wecom、console"
    await post(client, clock, "chenjing", "我发烧了38.5度", 9102)
    await wait_for(lambda: any(d.to_user == "zhangwei" for d in rt.channels["console"].transcript))
    rows = await _outbox_to(rt, "zhangwei", settled=2)
    assert [(r.channel, r.status) for r in rows] == [("wecom", "failed"), ("console", "sent")]
    assert rows[0].last_error.startswith("81013")


async def test_with_no_working_channel_healthz_degrades_and_the_leader_is_told_at_once(running, fake, clock):
    rt, client, seed = running
    await _staff_channels(rt, seed, "zhangwei", "bridge")  # the bridge is not configured here
    assert await (await client.get("/healthz")).text() == "ok"
    await post(client, clock, "zhaoliu", "7-1-201 36.6 正常", 9103)  # another grid, to warm up
    await post(client, clock, "wangfang", "我发烧了38.6度", 9104)
    # no clock moved: the grid leader and the grid's medic hear of it now, not in 15 minutes
    await wait_for(lambda: fake.sent_to("chengang") and fake.sent_to("liuyi"))
    assert "38.6" in fake.sent_to("chengang")[-1].text
    async with rt.db.session() as s:
        esc = await s.scalar(select(Escalation))
        assert esc.level == 1
    [row] = await _outbox_to(rt, "zhangwei")
    assert row.status == "unreachable"
    resp = await client.get("/healthz")
    assert resp.status == 200 and (await resp.text()).startswith("degraded: 1 escalations")
