"""End to end for an ordinary WeChat group behind the bridge, with the staff on the WeCom app (both
faked over HTTP): a running app built by build_app, its inbox workers and outbox sender running."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from sqlalchemy import func, select, update

from bot.app import build_app, build_runtime
from bot.channels.bridge import sign
from bot.config import Settings
from storage.models import Building, CheckIn, Escalation, Resident, Staff
from tests.fakewecom import FakeWeCom
from tests.testbot import community

SECRET, CORP = "bridge-secret", "wwfakecorp"


@pytest.fixture
async def fake():
    f = FakeWeCom(corp_id=CORP, secret="fake-secret")
    await f.start()
    yield f
    await f.close()


@pytest.fixture
async def running(db, clock, fake, aiohttp_client):
    """3号楼's group is an ordinary WeChat group behind the bridge; every staff member is on the app."""
    seed = await community(db)
    async with db.session() as s:
        await s.execute(update(Staff).values(channel="wecom"))
        await s.execute(update(Building).where(Building.chat_id == "g3").values(channel="bridge"))
        await s.execute(update(Resident).where(Resident.channel_user_id.is_not(None)).values(channel="bridge"))
    settings = Settings(database_url=db.url, wecom_corp_id=CORP, wecom_agent_id="1000002",
                        wecom_secret="fake-secret", wecom_token="tok3n",
                        wecom_aes_key="jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", wecom_api_base=fake.base_url,
                        bridge_secret=SECRET, bridge_send_url=fake.base_url + "/gateway/send", bridge_rate=600)
    rt = build_runtime(settings, clock, db=db, workers=2)
    client = await aiohttp_client(build_app(rt, background=False))
    rt.pipeline.start()
    rt.sender.start()
    yield rt, client, seed
    await rt.pipeline.stop()
    await rt.sender.stop()


_ids = iter(range(1, 10**6))


async def say(client, clock, sender: str, text: str, *, kind: str = "text", **extra) -> str:
    msg_id = f"w{next(_ids)}"
    body = json.dumps({"msg_id": msg_id, "chat_id": "g3", "chat_name": "3号楼", "sender_id": sender,
                       "sender_name": sender, "text": text, "ts": int(clock.now().timestamp()), "kind": kind,
                       **extra}, ensure_ascii=False).encode()
    t = str(int(clock.now().timestamp()))
    resp = await client.post("/bridge/events", data=body, headers={
        "X-Gridbot-Timestamp": t, "X-Gridbot-Signature": sign(SECRET, t, body), "Content-Type": "application/json"})
    assert resp.status == 200, await resp.text()
    return msg_id


async def until(pred, timeout: float = 8.0) -> None:
    t0 = time.monotonic()
    while not await pred():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.02)


async def count(rt, model, *where) -> int:
    async with rt.db.session() as s:
        return await s.scalar(select(func.count(model.id)).where(*where))


async def test_a_leaders_report_in_a_bridge_group_reaches_the_households_worker_on_the_app(running, fake, clock):
    rt, client, seed = running
    await say(client, clock, "a-neighbour", "楼长报：3号楼2单元502 王某某 今天体温38.2，已告知家属")

    async def alerted():
        return any("3-2-502" in m.text and "38.2" in m.text for m in fake.sent_to("zhangwei"))
    await until(alerted)
    assert await count(rt, Escalation, Escalation.household_id == seed.ids["h:3-2-502"]) == 1


async def test_a_jielong_and_its_repost_record_three_households_and_alert_once(running, fake, clock):
    rt, client, seed = running
    first = "#接龙 今日体温\n1. 3-2-501 王芳 36.5 正常\n2. 3-1-101 陈静 38.1"
    await say(client, clock, "wangfang", first, kind="jielong")
    await say(client, clock, "chenjing", first + "\n3. 3-2-601 王妈 36.6 正常", kind="jielong")

    async def three():
        async with rt.db.session() as s:
            return len(set((await s.scalars(select(CheckIn.household_id))).all())) == 3
    await until(three)
    await asyncio.sleep(0.3)  # a wrongly repeated alert would show by now
    assert sum("38.1" in m.text for m in fake.sent_to("zhangwei")) == 1
    assert await count(rt, Escalation) == 1


async def test_a_fever_then_normal_keeps_the_fever_and_a_recall_undoes_a_safe_report(running, fake, clock):
    rt, client, seed = running
    await say(client, clock, "wangfang", "我发烧了38.0")
    await say(client, clock, "wangfang", "36.5 正常")

    async def two():
        return await count(rt, CheckIn) == 2
    await until(two)
    assert await count(rt, CheckIn, CheckIn.fever.is_(True)) == 1

    safe = await say(client, clock, "wangma", "3-2-601 36.6 正常")

    async def three():
        return await count(rt, CheckIn) == 3
    await until(three)
    await say(client, clock, "wangma", "", kind="recall", recalls=safe)

    async def undone():
        return await count(rt, CheckIn, CheckIn.household_id == seed.ids["h:3-2-601"]) == 0
    await until(undone)
