"""The WeCom app channel: official vectors, wechatpy-encrypted callbacks, bad input, and sends
against the fake WeCom API (tokens, retries, pacing, faults)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.app import build_app, build_runtime
from bot.clock import FakeClock
from bot.config import Settings
from bot.dispatch import Context, Dispatcher, Router
from bot.model import Outbound
from bot.outbox import enqueue
from bot.state import RedisState
from storage.models import InboundMessage, OutboundMessage
from tests.fakewecom import FakeWeCom, encrypt_xml_callback, text_xml

TZ = ZoneInfo("Asia/Shanghai")
TOKEN, AES, CORP = "tok3n", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wwfakecorp"

SET_B = dict(token="hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo", aes="6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
             corp="ww1436e0e65a779aee")
SET_C = dict(token="QDG6eK", aes="jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", corp="wx5823bf96d3bd56c7")
SET_B_BODY = (
    "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>\n<Encrypt><![CDATA[Kl7kjoSf6DMD1zh7rtrHjFaDa"
    "pSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87"
    "hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkN"
    "L65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84Ep"
    "HSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+]]></Encrypt>\n<AgentID><![CDATA[1000002]]></AgentID>\n</xml>")
SET_C_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sY"
    "YvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+"
    "LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw"
    "8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1pt"
    "DAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==")


def echo() -> Dispatcher:
    r = Router("echo")

    @r.message(lambda ctx: ctx.inbound.kind == "text")
    async def reply(ctx: Context):
        return [ctx.reply("收到：" + ctx.text)]

    return Dispatcher([r])


def wecom_settings(tmp_path, base="http://127.0.0.1:9", **kw) -> Settings:
    vals = dict(database_url=f"sqlite+aiosqlite:///{tmp_path}/g.db", wecom_corp_id=CORP, wecom_agent_id="1000002",
                wecom_secret="fake-secret", wecom_token=TOKEN, wecom_aes_key=AES, wecom_api_base=base)
    vals.update(kw)
    return Settings(**vals)


def frozen_at(ts: int) -> FakeClock:
    return FakeClock(datetime.fromtimestamp(ts, timezone.utc).astimezone(TZ))


@pytest.fixture
async def fake():
    f = FakeWeCom(corp_id=CORP, secret="fake-secret")
    await f.start()
    yield f
    await f.close()


@pytest.fixture
async def wecom(sqlite_db, tmp_path, clock, fake, aiohttp_client):
    rt = build_runtime(wecom_settings(tmp_path, fake.base_url), clock, db=sqlite_db, dispatcher=echo())
    client = await aiohttp_client(build_app(rt, background=False))
    return rt, client


def now_ts(clock) -> int:
    return int(clock.now().timestamp())


async def rows(db, model=InboundMessage):
    async with db.session() as s:
        return list((await s.scalars(select(model).order_by(model.id))).all())


# -- official vectors ----------------------------------------------------------------------------


@pytest.mark.parametrize("vec, params, expected", [
    (SET_B, {"msg_signature": "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb", "timestamp": "1476416373",
             "nonce": "47744683",
             "echostr": "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="},
     "1288432023552776189"),
    (SET_C, {"msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "timestamp": "1409659589",
             "nonce": "263014780",
             "echostr": "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="},
     "1616140317555161061"),
])
async def test_url_verification_vectors(vec, params, expected, sqlite_db, tmp_path, aiohttp_client):
    s = wecom_settings(tmp_path, wecom_token=vec["token"], wecom_aes_key=vec["aes"], wecom_corp_id=vec["corp"])
    rt = build_runtime(s, frozen_at(int(params["timestamp"])), db=sqlite_db, dispatcher=echo())
    client = await aiohttp_client(build_app(rt, background=False))
    resp = await client.get("/wecom/callback", params=params)
    assert resp.status == 200 and await resp.text() == expected
    resp = await client.get("/wecom/callback", params={**params, "msg_signature": "0" * 40})
    assert resp.status == 403
    # The same vector years later is a replay.
    rt.clock.advance(timedelta(seconds=301))
    assert (await client.get("/wecom/callback", params=params)).status == 403


async def test_decrypt_vector_set_b(sqlite_db, tmp_path, aiohttp_client):
    s = wecom_settings(tmp_path, wecom_token=SET_B["token"], wecom_aes_key=SET_B["aes"], wecom_corp_id=SET_B["corp"])
    rt = build_runtime(s, frozen_at(1476422779), db=sqlite_db, dispatcher=echo())
    client = await aiohttp_client(build_app(rt, background=False))
    params = {"msg_signature": "0c3914025cb4b4d68103f6bfc8db550f79dcf48e", "timestamp": "1476422779",
              "nonce": "1597212914"}
    resp = await client.post("/wecom/callback", params=params, data=SET_B_BODY.encode())
    assert resp.status == 200 and await resp.text() == "success"
    (row,) = await rows(sqlite_db)
    assert (row.channel, row.msg_id, row.sender_id, row.text, row.kind, row.chat_id) == (
        "wecom", "1456453720", "ChenJiaShun", "你好", "text", None)
    assert row.sent_at == datetime.fromtimestamp(1476422779, timezone.utc)


async def test_decrypt_vector_set_c(sqlite_db, tmp_path, aiohttp_client):
    s = wecom_settings(tmp_path, wecom_token=SET_C["token"], wecom_aes_key=SET_C["aes"], wecom_corp_id=SET_C["corp"])
    rt = build_runtime(s, frozen_at(1409659813), db=sqlite_db, dispatcher=echo())
    client = await aiohttp_client(build_app(rt, background=False))
    body = (f"<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA[{SET_C_ENCRYPT}]]>"
            "</Encrypt><AgentID><![CDATA[218]]></AgentID></xml>")
    params = {"msg_signature": "477715d11cdb4164915debcba66cb864d751f3e6", "timestamp": "1409659813",
              "nonce": "1372623149"}
    resp = await client.post("/wecom/callback", params=params, data=body.encode())
    assert resp.status == 200
    (row,) = await rows(sqlite_db)
    assert (row.msg_id, row.sender_id, row.text) == ("4561255354251345929", "mycreate", "hello")


# -- callbacks encrypted by wechatpy ---------------------------------------------------------------


async def test_text_callback_is_stored_handled_and_answered(wecom, clock, fake):
    rt, client = wecom
    text = "3-2-501 36.5 正常 🌸 Здравствуйте مرحبا"
    params, body = encrypt_xml_callback(TOKEN, AES, CORP, text_xml("zhangsan", text, 1001, now_ts(clock)), now_ts(clock))
    resp = await client.post("/wecom/callback", params=params, data=body)
    assert resp.status == 200 and await resp.text() == "success"
    # WeCom's retry of the same MsgId changes nothing.
    assert (await client.post("/wecom/callback", params=params, data=body)).status == 200
    (row,) = await rows(rt.db)
    assert (row.text, row.sender_id, row.status) == (text, "zhangsan", "pending")
    assert await rt.pipeline.process_due() == 0  # nothing due yet: the workers got it from the queue
    await rt.pipeline.process(row.id)
    await rt.sender.deliver_due()
    assert [(s.kind, s.body["touser"], s.text, s.body["agentid"]) for s in fake.sends] == [
        ("message", "zhangsan", "收到：" + text, 1000002)]
    (out,) = await rows(rt.db, OutboundMessage)
    assert out.status == "sent"


@pytest.mark.parametrize("plain, kind, msg_id", [
    ("<xml><ToUserName>c</ToUserName><FromUserName>lisi</FromUserName><CreateTime>{ts}</CreateTime>"
     "<MsgType>image</MsgType><PicUrl>http://x/y.jpg</PicUrl><MediaId>m1</MediaId><MsgId>77</MsgId>"
     "<AgentID>1</AgentID></xml>", "image", "77"),
    ("<xml><ToUserName>c</ToUserName><FromUserName>lisi</FromUserName><CreateTime>{ts}</CreateTime>"
     "<MsgType>voice</MsgType><MediaId>m1</MediaId><Format>amr</Format><MsgId>78</MsgId></xml>", "voice", "78"),
    ("<xml><ToUserName>c</ToUserName><FromUserName>lisi</FromUserName><CreateTime>{ts}</CreateTime>"
     "<MsgType>event</MsgType><Event>enter_agent</Event><AgentID>1</AgentID></xml>", "event:enter_agent",
     "lisi:{ts}"),
    ("<xml><ToUserName>c</ToUserName><FromUserName>lisi</FromUserName><CreateTime>{ts}</CreateTime>"
     "<MsgType>hologram</MsgType><MsgId>79</MsgId></xml>", "hologram", "79"),
])
async def test_other_kinds_are_stored_and_acknowledged(wecom, clock, plain, kind, msg_id):
    rt, client = wecom
    ts = now_ts(clock)
    params, body = encrypt_xml_callback(TOKEN, AES, CORP, plain.format(ts=ts), ts)
    resp = await client.post("/wecom/callback", params=params, data=body)
    assert resp.status == 200 and await resp.text() == "success"
    (row,) = await rows(rt.db)
    assert (row.kind, row.msg_id, row.text) == (kind, msg_id.format(ts=ts), "")
    await rt.pipeline.process(row.id)
    (row,) = await rows(rt.db)
    assert row.status == "done"


# -- bad input ---------------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<xml><Encrypt>&lol9;</Encrypt></xml>"""
XXE = b"""<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><Encrypt>&xxe;</Encrypt></xml>"""
XXE_NO_DOCTYPE_WORD = b"""<?xml version="1.0"?><xml><!ENTITY x "y"><Encrypt>a</Encrypt></xml>"""


@pytest.mark.parametrize("body, status", [
    (BILLION_LAUGHS, 400), (XXE, 400), (XXE_NO_DOCTYPE_WORD, 400), (b"<xml><Encrypt>abc", 400),
    (b"not xml at all \xff\xfe", 400), (b"<xml><Nothing/></xml>", 400), (b"", 400),
    (b"<xml><Encrypt>" + b"A" * 100_000 + b"</Encrypt></xml>", 413),
])
async def test_bad_bodies_are_refused_without_harm(wecom, clock, body, status):
    rt, client = wecom
    params = {"msg_signature": "x", "timestamp": str(now_ts(clock)), "nonce": "1"}
    resp = await client.post("/wecom/callback", params=params, data=body)
    assert resp.status == status
    assert await rows(rt.db) == []


async def test_forged_signature_and_stale_timestamp(wecom, clock):
    rt, client = wecom
    ts = now_ts(clock)
    params, body = encrypt_xml_callback(TOKEN, AES, CORP, text_xml("u", "hi", 5, ts), ts)
    forged = {**params, "msg_signature": params["msg_signature"][:-1] + ("0" if params["msg_signature"][-1] != "0" else "1")}
    assert (await client.post("/wecom/callback", params=forged, data=body)).status == 403
    assert (await client.post("/wecom/callback", params={**params, "msg_signature": ""}, data=body)).status == 403
    # Signed with another token:
    p2, b2 = encrypt_xml_callback("other-token", AES, CORP, text_xml("u", "hi", 6, ts), ts)
    assert (await client.post("/wecom/callback", params=p2, data=b2)).status == 403
    # Correctly signed, but 301 s old (or from the future):
    for delta in (301, -301):
        old = ts - delta
        p3, b3 = encrypt_xml_callback(TOKEN, AES, CORP, text_xml("u", "hi", 7, old), old)
        assert (await client.post("/wecom/callback", params=p3, data=b3)).status == 403
    # Right key and token, wrong corp id inside:
    p4, b4 = encrypt_xml_callback(TOKEN, AES, "wwsomeoneelse", text_xml("u", "hi", 8, ts), ts)
    assert (await client.post("/wecom/callback", params=p4, data=b4)).status == 403
    assert await rows(rt.db) == []
    # Inside the window it is fine.
    p5, b5 = encrypt_xml_callback(TOKEN, AES, CORP, text_xml("u", "hi", 9, ts - 299), ts - 299)
    assert (await client.post("/wecom/callback", params=p5, data=b5)).status == 200


async def test_database_down_answers_503(wecom, clock):
    rt, client = wecom
    await rt.db.dispose()
    from storage.db import Database

    rt.db = Database("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    rt.pipeline.inbox.db = rt.db
    ts = now_ts(clock)
    params, body = encrypt_xml_callback(TOKEN, AES, CORP, text_xml("u", "hi", 10, ts), ts)
    assert (await client.post("/wecom/callback", params=params, data=body)).status == 503
    assert (await client.get("/healthz")).status == 503
    await rt.db.dispose()


# -- sending -----------------------------------------------------------------------------------------


async def queue(rt, *outs: Outbound) -> None:
    async with rt.db.session() as s:
        await enqueue(s, outs, rt.clock.now())


def to(user: str, text: str) -> Outbound:
    return Outbound(channel="wecom", to_user=user, text=text)


async def test_token_cached_and_refreshed_once_on_expiry(wecom, fake):
    rt, _ = wecom
    await queue(rt, to("a", "1"), to("b", "2"))
    await rt.sender.deliver_due()
    assert fake.token_requests == 1 and len(fake.sends) == 2
    fake.expire_tokens()  # 40014/42001: refresh once, then the send goes through
    await queue(rt, to("a", "3"))
    await rt.sender.deliver_due()
    assert fake.token_requests == 2 and [s.text for s in fake.sends] == ["1", "2", "3"]


async def test_concurrent_refresh_fetches_one_token(wecom, fake):
    rt, _ = wecom
    api = rt.channels["wecom"].api
    toks = await asyncio.gather(*(api.token() for _ in range(20)))
    assert len(set(toks)) == 1 and fake.token_requests == 1


async def test_token_cache_in_redis(sqlite_db, tmp_path, clock, fake, redis_client):
    state = RedisState(redis_client, prefix=redis_client.test_prefix)
    rt = build_runtime(wecom_settings(tmp_path, fake.base_url), clock, db=sqlite_db, state=state, dispatcher=echo())
    tok = await rt.channels["wecom"].api.token()
    assert await redis_client.get(redis_client.test_prefix + f"wecom:token:{CORP}:1000002") == tok.encode()
    # A second process shares it.
    rt2 = build_runtime(wecom_settings(tmp_path, fake.base_url), clock, db=sqlite_db,
                        state=RedisState(redis_client, prefix=redis_client.test_prefix), dispatcher=echo())
    assert await rt2.channels["wecom"].api.token() == tok and fake.token_requests == 1
    ttl = await redis_client.ttl(redis_client.test_prefix + f"wecom:token:{CORP}:1000002")
    assert 7200 - 300 - 5 <= ttl <= 7200 - 300
    for r in (rt, rt2):
        await r.channels["wecom"].close()


@pytest.mark.parametrize("failure, reason", [(45009, "45009"), (502, "http_502"), (-1, "-1")])
async def test_retryable_failures_back_off_and_deliver(wecom, fake, failure, reason):
    rt, client = wecom
    fake.fail_next(failure, times=2)
    await queue(rt, to("a", "fever alert"))
    await rt.sender.deliver_due()
    (row,) = await rows(rt.db, OutboundMessage)
    assert (row.status, row.attempts) == ("pending", 1) and row.last_error.startswith(reason)
    assert fake.sends == []
    for _ in range(3):
        rt.clock.advance(timedelta(minutes=2))
        await rt.sender.deliver_due()
    (row,) = await rows(rt.db, OutboundMessage)
    assert (row.status, row.attempts) == ("sent", 3)
    assert [s.text for s in fake.sends] == ["fever alert"]
    metrics = (await (await client.get("/metrics")).text())
    assert f'gridbot_send_failures_total{{channel="wecom",reason="{reason}"}} 2.0' in metrics


async def test_timeout_is_retried(wecom, fake):
    rt, _ = wecom
    rt.channels["wecom"].api.timeout = __import__("aiohttp").ClientTimeout(total=0.2)
    await rt.channels["wecom"].api.token()
    fake.fail_next("hang")
    await queue(rt, to("a", "x"))
    await rt.sender.deliver_due()
    (row,) = await rows(rt.db, OutboundMessage)
    assert (row.status, row.last_error) == ("pending", "timeout")
    rt.clock.advance(timedelta(minutes=1))
    await rt.sender.deliver_due()
    assert [s.text for s in fake.sends] == ["x"]


async def test_unknown_user_is_a_permanent_failure(wecom, fake, client_metrics=None):
    rt, client = wecom
    fake.users = {"known"}
    await queue(rt, to("ghost", "hello"), to("known", "hi"))
    await rt.sender.deliver_due()
    ghost, known = await rows(rt.db, OutboundMessage)
    assert (ghost.status, known.status) == ("failed", "sent")
    assert ghost.last_error.startswith("81013")
    text = await (await client.get("/metrics")).text()
    assert 'gridbot_send_failures_total{channel="wecom",reason="81013"} 1.0' in text


async def test_appchat_goes_to_the_group(wecom, fake):
    rt, _ = wecom
    fake.chats["bldg-3"] = ["a", "b", "c"]
    await queue(rt, Outbound(channel="wecom", to_chat="bldg-3", text="今日打卡进度：41/48 户"))
    await rt.sender.deliver_due()
    assert [(s.kind, s.body["chatid"], s.text) for s in fake.sends] == [("appchat", "bldg-3", "今日打卡进度：41/48 户")]
    assert await rt.state.get("wecom:chatsize:bldg-3") == "3"


async def test_per_member_pacing_respects_30_a_minute(wecom, fake):
    rt, _ = wecom
    fake.enforce_limits = True
    await queue(rt, *[to("busy", f"m{i}") for i in range(35)], to("other", "o"))
    await rt.sender.deliver_due()
    assert len(fake.sent_to("busy")) == 30 and len(fake.sent_to("other")) == 1
    pending = [r for r in await rows(rt.db, OutboundMessage) if r.status == "pending"]
    assert len(pending) == 5 and all(r.attempts == 0 for r in pending)  # paced, not failed
    assert all(r.next_attempt_at > rt.clock.now() for r in pending)
    # In order: the first 30 went first.
    assert [s.text for s in fake.sent_to("busy")] == [f"m{i}" for i in range(30)]


async def test_sender_survives_every_third_call_failing_exactly_once(db, tmp_path, clock, fake):
    rt = build_runtime(wecom_settings(tmp_path, fake.base_url), clock, db=db, dispatcher=echo())
    fake.fail_every(3, 45009)
    await queue(rt, *[to(f"u{i % 7}", f"id-{i}") for i in range(60)])
    for _ in range(40):
        await rt.sender.deliver_due()
        clock.advance(timedelta(minutes=2))
    texts = [s.text for s in fake.sends]
    assert sorted(texts) == sorted(f"id-{i}" for i in range(60))  # each exactly once
    assert all(r.status == "sent" for r in await rows(db, OutboundMessage))
    await rt.channels["wecom"].close()


async def test_ignored_own_messages(wecom, clock):
    rt, client = wecom
    ts = now_ts(clock)
    for sender in ("sys", "1000002"):
        params, body = encrypt_xml_callback(TOKEN, AES, CORP, text_xml(sender, "x", 20 + len(sender), ts), ts)
        assert (await client.post("/wecom/callback", params=params, data=body)).status == 200
    assert await rows(rt.db) == []


def test_split_text_keeps_every_character_under_the_limit():
    from bot.channels.wecom.app import split_text

    assert split_text("短消息") == ["短消息"]
    ledger = "\n".join(f"3-{u}-{r} 未报" for u in range(1, 7) for r in range(101, 1801, 100)) * 3
    parts = split_text(ledger)
    assert len(parts) > 1 and all(len(p.encode()) <= 2000 for p in parts)
    assert "\n".join(parts) == ledger
    one_line = "病" * 3000
    parts = split_text(one_line)
    assert all(len(p.encode()) <= 2000 for p in parts) and "".join(parts) == one_line


async def test_long_text_goes_as_several_messages(wecom, fake):
    rt, _ = wecom
    text = "\n".join(f"第{i}户 3-2-{i:03d} 未报" for i in range(300))
    await queue(rt, to("worker", text))
    await rt.sender.deliver_due()
    assert len(fake.sends) > 1 and "\n".join(s.text for s in fake.sends) == text
