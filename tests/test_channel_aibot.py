"""The WeCom AI bot channel: JSON callbacks (vector and wechatpy-encrypted), mentions, replies."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.app import build_app, build_runtime
from bot.channels.base import BadRequest
from bot.channels.wecom.aibot import open_json_callback, strip_mentions
from bot.clock import FakeClock
from bot.config import Settings
from bot.dispatch import Context, Dispatcher, Router
from bot.model import Outbound
from bot.outbox import enqueue
from storage.models import InboundMessage, OutboundMessage
from tests.fakewecom import FakeWeCom, encrypt_json_callback

TOKEN, AES = "aibot-token", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
TZ = ZoneInfo("Asia/Shanghai")


def dispatcher() -> Dispatcher:
    r = Router("t")

    @r.message(lambda ctx: ctx.text == "两条")
    async def two(ctx: Context):
        return [ctx.reply_in_chat("第一条"), ctx.reply_in_chat("第二条")]

    @r.message(lambda ctx: ctx.text == "私聊")
    async def private(ctx: Context):
        return [ctx.reply("体温37.8，已通知网格员"), ctx.reply_in_chat("已收到")]

    @r.message()
    async def echo(ctx: Context):
        return [ctx.reply_in_chat("收到：" + ctx.text)]

    return Dispatcher([r])


def settings(tmp_path, base: str | None = None) -> Settings:
    kw = dict(database_url=f"sqlite+aiosqlite:///{tmp_path}/g.db", wecom_aibot_token=TOKEN, wecom_aibot_aes_key=AES)
    if base:
        kw.update(wecom_corp_id="wwfakecorp", wecom_agent_id="1000002", wecom_secret="fake-secret",
                  wecom_token="t", wecom_aes_key=AES, wecom_api_base=base)
    return Settings(**kw)


@pytest.fixture
async def fake():
    f = FakeWeCom(corp_id="wwfakecorp", secret="fake-secret")
    await f.start()
    yield f
    await f.close()


def payload(fake, msgid="a1", text="@机器人 3-2-501 36.5 正常", chattype="group", userid="zhang", **kw):
    d = {"msgid": msgid, "aibotid": "bot1", "chatid": "grp-3" if chattype == "group" else "",
         "chattype": chattype, "from": {"userid": userid}, "response_url": fake.response_url(msgid),
         "msgtype": "text", "text": {"content": text}}
    d.update(kw)
    return json.dumps(d, ensure_ascii=False)


async def post(client, clock, plain: str, receive_id: str = ""):
    ts = int(clock.now().timestamp())
    params, body = encrypt_json_callback(TOKEN, AES, receive_id, plain, ts)
    return await client.post("/wecom/aibot", params=params, data=body)


@pytest.fixture
async def bot(sqlite_db, tmp_path, clock, fake, aiohttp_client):
    rt = build_runtime(settings(tmp_path), clock, db=sqlite_db, dispatcher=dispatcher())
    return rt, await aiohttp_client(build_app(rt, background=False))


async def run(rt):
    async with rt.db.session() as s:
        ids = (await s.scalars(select(InboundMessage.id).where(InboundMessage.status == "pending"))).all()
    for rid in ids:
        await rt.pipeline.process(rid)
    await rt.sender.deliver_due()


def test_strip_mentions():
    assert strip_mentions("@机器人 3-2-501 36.5") == "3-2-501 36.5"
    assert strip_mentions("@小助手\u2005@张三 全家都好") == "全家都好"
    assert strip_mentions("  @bot   hi @you") == "hi @you"
    assert strip_mentions("邮箱a@b.com") == "邮箱a@b.com"


def test_official_json_sample_decrypts():
    # callback_json/Sample.py: the plaintext is Tencent's, and not valid JSON; compare as a string.
    q = {"msg_signature": "e3647471e395139e2308c1fa963f2d648a00b90e", "timestamp": "1409659813",
         "nonce": "1372623149"}
    enc = ("cjhLUX7UU4yCSelv1vz7T0zT8huF51bAMVWriNvO1FMegHrQZNrtvRxbwf0fUPsFvwqR0U0fgiJNEA5Y30F2MoI2S7vv3EjVQ68C0cjw9f"
           "rBoUE2Hj0BvFp9h3u6Vbsg4lc1C8AtHdaN8orKuNKkLRLuYEL52R1J3v8olJGZRLnRdVKIivixmX/eQpzgeExtp20jI1HxRP1AAZ6xZoIL"
           "dqDPO549LO4WeG+685JRUTdiwcY5fjZlqeMxuT4PpMn1X9OWsS7NRj06Wa5E3Tvg4twjWp39KPfOdRte6P1T4JU=")
    body = json.dumps({"encrypt": enc}).encode()
    token, key = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo", "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
    plain = open_json_callback(token, key, ("ww1436e0e65a779aee",), q, body, now_ts=1409659813)
    assert plain == ('{ "ToUserName": "wx5823bf96d3bd56c7", "FromUserName": :mycreate", "CreateTime": 1409659813, '
                     '"MsgType": "text", "Content": "hello", "MsgId": 4561255354251345929, "AgentID": 218}')
    with pytest.raises(BadRequest) as e:  # the same sample 301 s later is a replay
        open_json_callback(token, key, ("ww1436e0e65a779aee",), q, body, now_ts=1409659813 + 301)
    assert e.value.status == 403
    with pytest.raises(BadRequest) as e:  # an AI bot's receive id is "": a corp-app payload is refused
        open_json_callback(token, key, ("",), q, body, now_ts=1409659813)
    assert e.value.status == 403


async def test_official_json_sample_through_the_route(sqlite_db, tmp_path, aiohttp_client):
    s = Settings(database_url="sqlite://", wecom_aibot_token="hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo",
                 wecom_aibot_aes_key="6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt", wecom_corp_id="ww1436e0e65a779aee")
    clock = FakeClock(datetime.fromtimestamp(1409659813, timezone.utc).astimezone(TZ))
    rt = build_runtime(s, clock, db=sqlite_db, dispatcher=dispatcher())
    client = await aiohttp_client(build_app(rt, background=False))
    q = {"msg_signature": "e3647471e395139e2308c1fa963f2d648a00b90e", "timestamp": "1409659813", "nonce": "1372623149"}
    enc = ("cjhLUX7UU4yCSelv1vz7T0zT8huF51bAMVWriNvO1FMegHrQZNrtvRxbwf0fUPsFvwqR0U0fgiJNEA5Y30F2MoI2S7vv3EjVQ68C0cjw9f"
           "rBoUE2Hj0BvFp9h3u6Vbsg4lc1C8AtHdaN8orKuNKkLRLuYEL52R1J3v8olJGZRLnRdVKIivixmX/eQpzgeExtp20jI1HxRP1AAZ6xZoIL"
           "dqDPO549LO4WeG+685JRUTdiwcY5fjZlqeMxuT4PpMn1X9OWsS7NRj06Wa5E3Tvg4twjWp39KPfOdRte6P1T4JU=")
    resp = await client.post("/wecom/aibot", params=q, data=json.dumps({"encrypt": enc}))
    # Verified and decrypted, but Tencent's plaintext is not JSON: refused, never crashed on.
    assert resp.status == 400 and "inside" in await resp.text()


async def test_group_mention_is_stored_and_answered_once_to_response_url(bot, clock, fake):
    rt, client = bot
    resp = await post(client, clock, payload(fake, text="@机器人 3-2-501 36.5 正常 😷"))
    assert resp.status == 200
    assert (await post(client, clock, payload(fake, text="@机器人 3-2-501 36.5 正常 😷"))).status == 200  # retry
    async with rt.db.session() as s:
        (row,) = (await s.scalars(select(InboundMessage))).all()
    assert (row.channel, row.chat_id, row.sender_id, row.text, row.reply_to) == (
        "aibot", "grp-3", "zhang", "3-2-501 36.5 正常 😷", fake.response_url("a1"))
    await run(rt)
    assert [(s.kind, s.text) for s in fake.sends] == [("response_url", "收到：3-2-501 36.5 正常 😷")]


async def test_several_replies_join_into_one_post(bot, clock, fake):
    rt, client = bot
    await post(client, clock, payload(fake, msgid="j1", text="@机器人 两条"))
    await run(rt)
    assert [s.text for s in fake.sends] == ["第一条\n\n第二条"]
    async with rt.db.session() as s:
        assert {r.status for r in (await s.scalars(select(OutboundMessage))).all()} == {"sent"}


async def test_private_chat_has_no_chat_id(bot, clock, fake):
    rt, client = bot
    await post(client, clock, payload(fake, msgid="p1", text="全家都好", chattype="single"))
    await run(rt)
    async with rt.db.session() as s:
        row = (await s.scalars(select(InboundMessage))).one()
    assert row.chat_id is None
    assert [s.text for s in fake.sends] == ["收到：全家都好"]


async def test_private_reply_to_group_message_never_goes_to_the_group(bot, clock, fake):
    rt, client = bot
    await post(client, clock, payload(fake, msgid="g1", text="@机器人 私聊"))
    await run(rt)
    # The group hears only the acknowledgement; the health detail has no way out without the app.
    assert [s.text for s in fake.sends] == ["已收到"]
    async with rt.db.session() as s:
        failed = (await s.scalars(select(OutboundMessage).where(OutboundMessage.status == "failed"))).one()
    assert failed.to_user == "zhang" and "no WeCom app" in failed.last_error


async def test_private_reply_falls_back_to_the_app(sqlite_db, tmp_path, clock, fake, aiohttp_client):
    rt = build_runtime(settings(tmp_path, fake.base_url), clock, db=sqlite_db, dispatcher=dispatcher())
    client = await aiohttp_client(build_app(rt, background=False))
    await post(client, clock, payload(fake, msgid="g2", text="@机器人 私聊"))
    await run(rt)
    assert sorted((s.kind, s.text) for s in fake.sends) == [("message", "体温37.8，已通知网格员"),
                                                           ("response_url", "已收到")]
    # A scheduled message to an AI-bot group (no response_url) goes out as appchat.
    async with rt.db.session() as s:
        await enqueue(s, [Outbound(channel="aibot", to_chat="grp-3", text="早上好，请报平安")], clock.now())
    await rt.sender.deliver_due()
    assert fake.sends[-1].kind == "appchat" and fake.sends[-1].body["chatid"] == "grp-3"


async def test_bot_messages_and_bad_input(bot, clock, fake):
    rt, client = bot
    assert (await post(client, clock, payload(fake, msgid="b1", userid=""))).status == 200
    assert (await post(client, clock, payload(fake, msgid="b2", msgtype="image", image={"url": "x"}))).status == 200
    ts = str(int(clock.now().timestamp()))
    q = {"msg_signature": "x", "timestamp": ts, "nonce": "1"}
    assert (await client.post("/wecom/aibot", params=q, data=b"{not json")).status == 400
    assert (await client.post("/wecom/aibot", params=q, data=b'{"encrypt": ""}')).status == 400
    assert (await client.post("/wecom/aibot", params=q, data=b"x" * 100_000)).status == 413
    params, body = encrypt_json_callback(TOKEN, AES, "", payload(fake, msgid="b3"), ts)
    assert (await client.post("/wecom/aibot", params={**params, "msg_signature": "0" * 40}, data=body)).status == 403
    old = str(int(ts) - 400)
    params, body = encrypt_json_callback(TOKEN, AES, "", payload(fake, msgid="b4"), old)
    assert (await client.post("/wecom/aibot", params=params, data=body)).status == 403
    params, body = encrypt_json_callback(TOKEN, AES, "", "not json", ts)
    assert (await client.post("/wecom/aibot", params=params, data=body)).status == 400
    async with rt.db.session() as s:
        kinds = (await s.scalars(select(InboundMessage.kind))).all()
    assert kinds == ["image"]  # the bot's own message is not stored; the image is


async def test_url_verification(bot, clock):
    rt, client = bot
    from wechatpy.enterprise.crypto import PrpCrypto

    from bot.channels.wecom.crypto import wecom_signature

    ts = str(int(clock.now().timestamp()))
    echostr = PrpCrypto(__import__("base64").b64decode(AES + "=")).encrypt("echo-123", "").decode()
    sig = wecom_signature(TOKEN, ts, "n", echostr)
    resp = await client.get("/wecom/aibot", params={"msg_signature": sig, "timestamp": ts, "nonce": "n",
                                                    "echostr": echostr})
    assert resp.status == 200 and await resp.text() == "echo-123"
