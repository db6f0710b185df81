"""No 500s: what a client sends that cannot be parsed, decoded or converted is a 400 with a short
reason on every route, and what does fail is logged with its traceback redacted."""

from __future__ import annotations

import io
import json
import logging
from datetime import datetime, timezone

import pytest
from aiohttp import web
from sqlalchemy import select

from bot import httperrors
from bot.app import build_app, build_runtime
from bot.clock import FakeClock
from bot.config import Settings
from bot.dispatch import Dispatcher
from bot.logs import RateLimitFilter, RedactingFilter
from storage.models import InboundMessage
from tests.fakewecom import encrypt_json_callback, encrypt_xml_callback, text_xml
from tests.test_dashboard import DAY, PASSWORD, at, seed

TOKEN, AES, CORP = "tok3n", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wwfakecorp"
DEEP = b"[" * 15_000 + b"]" * 15_000  # deep, under the 64 KB body cap


@pytest.fixture
def clock():
    return FakeClock(at(DAY, 20))


@pytest.fixture
async def app_client(db, clock, aiohttp_client):
    s = Settings(database_url="sqlite://", wecom_corp_id=CORP, wecom_agent_id="1000002", wecom_secret="x",
                 wecom_token=TOKEN, wecom_aes_key=AES, wecom_api_base="http://127.0.0.1:9",
                 wecom_aibot_token=TOKEN, wecom_aibot_aes_key=AES)
    rt = build_runtime(s, clock, db=db, dispatcher=Dispatcher([]))
    await seed(db)
    return rt, await aiohttp_client(build_app(rt, background=False))


async def _logged_in(client):
    resp = await client.post("/api/login", json={"user": "w1", "password": PASSWORD})
    assert resp.status == 200, await resp.text()


def _ts(clock) -> int:
    return int(clock.now().timestamp())


async def _aibot(client, clock, plain: str):
    params, body = encrypt_json_callback(TOKEN, AES, "", plain, _ts(clock))
    return await client.post("/wecom/aibot", params=params, data=body)


def _aibot_msg(**kw) -> str:
    d = {"msgid": "a1", "chatid": "", "chattype": "single", "from": {"userid": "zhang"},
         "msgtype": "text", "text": {"content": "3-2-501 36.5"}}
    d.update(kw)
    return json.dumps(d)


# -- deep JSON --------------------------------------------------------------------------------------


async def test_deep_json_on_the_aibot_callback_is_a_400(app_client):
    _, client = app_client
    resp = await client.post("/wecom/aibot", params={"timestamp": "1", "nonce": "n", "msg_signature": "s"},
                             data=b'{"encrypt": ' + DEEP + b"}")
    assert resp.status == 400


async def test_deep_json_inside_a_signed_aibot_callback_is_a_400(app_client, clock):
    _, client = app_client
    resp = await _aibot(client, clock, DEEP.decode())
    assert resp.status == 400


async def test_deep_json_on_login_is_a_400(app_client):
    _, client = app_client
    resp = await client.post("/api/login", data=b'{"user": ' + DEEP + b"}",
                             headers={"Content-Type": "application/json"})
    assert resp.status == 400 and "error" in await resp.json()


# -- query parameters -------------------------------------------------------------------------------


async def test_nul_in_grid_is_a_400(app_client):
    _, client = app_client
    await _logged_in(client)
    for route in ("/api/ledger", "/api/escalations", "/api/residents", "/api/rates"):
        resp = await client.get(route, params={"grid": "一\x00网格"})
        assert resp.status == 400, (route, resp.status)
        assert "error" in await resp.json()


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "1900-02-29"])
async def test_absurd_dates_are_a_400(app_client, day):
    _, client = app_client
    await _logged_in(client)
    for route in ("/api/ledger", "/api/ledger.xlsx", "/api/rates"):
        resp = await client.get(route, params={"date": day})
        assert resp.status == 400, (route, day, resp.status)


async def test_absurd_values_on_every_api_route_are_never_a_500(app_client):
    rt, client = app_client
    await _logged_in(client)
    app = client.server.app
    routes = sorted({r.resource.canonical for r in app.router.routes()
                     if r.method == "GET" and r.resource.canonical.startswith("/api/")})
    assert "/api/ledger" in routes
    absurd = ["0001-01-01", "9" * 5000, "-1", "1e400", "nan", "\ud800", "%", "[]", "x" * 5000, "2026-02-30"]
    for route in routes:
        for name in ("date", "grid", "limit", "offset", "days", "status"):
            for value in absurd:
                resp = await client.get(route, params={name: value})
                assert resp.status < 500, (route, name, value[:20], resp.status)


# -- validly signed, absurd content -----------------------------------------------------------------


async def test_a_signed_wecom_message_with_an_absurd_create_time_is_stored_with_our_clock(app_client, clock, db):
    rt, client = app_client
    for n, ct in enumerate(("99999999999999999999", "-5", "253402300800")):
        params, body = encrypt_xml_callback(TOKEN, AES, CORP, text_xml("zhang", "3-2-501 36.5", 100 + n, 0)
                                            .replace("<CreateTime>0</CreateTime>", f"<CreateTime>{ct}</CreateTime>"),
                                            _ts(clock))
        resp = await client.post("/wecom/callback", params=params, data=body)
        assert resp.status == 200, (ct, resp.status)
    async with db.session() as s:
        sent = list((await s.scalars(select(InboundMessage.sent_at))).all())
    assert len(sent) == 3 and all(t == clock.now() for t in sent)


@pytest.mark.parametrize("field", [
    {"create_time": 1e300}, {"create_time": "abc"}, {"create_time": 10**30},
])
async def test_a_signed_aibot_message_with_an_absurd_create_time_is_stored(app_client, clock, field):
    _, client = app_client
    resp = await _aibot(client, clock, _aibot_msg(**field))
    assert resp.status == 200


@pytest.mark.parametrize("field", [
    {"text": ["3-2-501", "36.5"]}, {"text": {"content": ["36.5"]}}, {"from": ["zhang"]},
    {"from": {"userid": ["zhang"]}}, {"msgid": {"a": 1}}, {"msgtype": "event", "event": ["x"]},
])
async def test_a_signed_aibot_message_with_a_list_where_an_object_goes_is_never_a_500(app_client, clock, field):
    _, client = app_client
    resp = await _aibot(client, clock, _aibot_msg(**field))
    assert resp.status in (200, 400), resp.status


async def test_a_signed_aibot_message_with_a_list_as_content_is_a_400(app_client, clock):
    _, client = app_client
    assert (await _aibot(client, clock, _aibot_msg(text=["3-2-501 36.5"]))).status == 400


def test_unix_time_refuses_the_absurd():
    tz = timezone.utc
    assert httperrors.unix_time(1770678000, tz) == datetime.fromtimestamp(1770678000, tz)
    assert httperrors.unix_time("1770678000", tz) is not None
    for v in (None, 0, -5, 1e300, float("nan"), 10**30, "abc", True, [1], 253402300800):
        assert httperrors.unix_time(v, tz) is None, v


# -- what does fail is logged redacted --------------------------------------------------------------


async def test_an_unexpected_error_is_a_bare_500_logged_with_a_redacted_traceback(aiohttp_client, caplog):
    async def boom(request):
        raise KeyError("我发烧 38.5度 电话 13812345678")

    app = web.Application(middlewares=[httperrors.middleware])
    app.router.add_get("/boom", boom)
    client = await aiohttp_client(app)
    with caplog.at_level(logging.ERROR, logger="bot.httperrors"):
        resp = await client.get("/boom")
    assert resp.status == 500 and await resp.text() == "internal error"
    assert "Traceback" in caplog.text and "13812345678" not in caplog.text and "38.5" not in caplog.text


def test_the_log_filter_redacts_tracebacks_too():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test.redact.tb")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        words = "发烧 38.5度，电话13812345678，住3-2-501"
        try:
            int(words)
        except ValueError:
            logger.exception("row 12 failed")
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert "row 12 failed" in text and "Traceback" in text and "ValueError" in text
    assert "13812345678" not in text and "38.5" not in text and "3-2-501" not in text


def test_repeated_errors_are_one_line_a_minute_with_a_count():
    now = [0.0]
    f = RateLimitFilter(60, time_fn=lambda: now[0])

    emfile = OSError(24, "Too many open files")

    def rec(msg="accept failed", exc: BaseException | None = emfile, level=logging.ERROR):
        r = logging.LogRecord("asyncio", level, "x", 1, msg, None, (type(exc), exc, None) if exc else None)
        return f.filter(r), r

    assert rec()[0] is True
    assert [rec()[0] for _ in range(1000)] == [False] * 1000
    assert rec(msg="another kind")[0] is True
    assert rec(level=logging.INFO, exc=None)[0] is True  # below WARNING: never held back
    now[0] = 61
    ok, r = rec()
    assert ok and "[1000 more like this in the last 60 s]" in r.getMessage()
