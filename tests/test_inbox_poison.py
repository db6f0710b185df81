"""Poison rows: a message the database would refuse (a NUL, a lone surrogate, a chat_id over the
column's size) is cleaned before storage, and a row that still fails in a group commit is retried
alone and kept as a `failed` row — its neighbours in the burst are stored and answered 200."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from bot import inbox as inbox_mod
from bot.app import build_app, build_runtime
from bot.channels.bridge import sign
from bot.config import Settings
from bot.dispatch import Dispatcher
from bot.inbox import clean
from bot.model import Inbound
from storage.models import InboundMessage

SECRET = "bridge-secret"


@pytest.fixture
async def bridge(pg_db, clock, aiohttp_client):
    s = Settings(database_url="sqlite://", bridge_secret=SECRET, bridge_send_url="http://127.0.0.1:1/none")
    # A wide group-commit window: the whole burst goes into one INSERT, as under the 08:00 wave.
    rt = build_runtime(s, clock, db=pg_db, dispatcher=Dispatcher([]), inbox_window_s=0.05)
    return rt, await aiohttp_client(build_app(rt, background=False))


def _body(i: int, **kw) -> bytes:
    d = {"msg_id": f"m{i}", "chat_id": "wxgroup-3", "chat_name": "3号楼", "sender_id": f"wxid_{i}",
         "sender_name": "张三", "text": f"3-2-{i:03d} 36.5 正常"}
    d.update(kw)
    return json.dumps(d).encode()  # ensure_ascii: "\ud800" travels as an escape, as a gateway may send it


async def _burst(client, clock, bodies: list[bytes]) -> list[int]:
    ts = str(int(clock.now().timestamp()))

    async def one(body: bytes) -> int:
        resp = await client.post("/bridge/events", data=body, headers={
            "X-Gridbot-Timestamp": ts, "X-Gridbot-Signature": sign(SECRET, ts, body),
            "Content-Type": "application/json"})
        return resp.status

    return list(await asyncio.gather(*(one(b) for b in bodies)))


async def _rows(db) -> list[InboundMessage]:
    async with db.session() as s:
        return list((await s.scalars(select(InboundMessage).order_by(InboundMessage.id))).all())


@pytest.mark.postgres
async def test_poison_fields_are_cleaned_and_the_burst_is_stored(bridge, clock, pg_db):
    rt, client = bridge
    bodies = [_body(i) for i in range(30)]
    bodies[7] = _body(7, text="36.5\x00正常")
    bodies[13] = _body(13, text="\ud800 36.6", sender_name="\udfff张")
    bodies[21] = _body(21, chat_id="g" * 300, chat_name="楼" * 500, msg_id="x" * 400)
    statuses = await _burst(client, clock, bodies)
    assert statuses == [200] * 30
    rows = await _rows(pg_db)
    assert len(rows) == 30 and all(r.status == "pending" for r in rows)
    by_sender = {r.sender_id: r for r in rows}
    assert by_sender["wxid_7"].text == "36.5\ufffd正常"
    assert by_sender["wxid_13"].text == "\ufffd 36.6" and by_sender["wxid_13"].sender_name == "\ufffd张"
    long = by_sender["wxid_21"]
    assert (len(long.chat_id), len(long.chat_name), len(long.msg_id)) == (128, 200, 128)


@pytest.mark.postgres
async def test_a_row_refused_in_a_group_commit_fails_alone(bridge, clock, pg_db, monkeypatch, caplog):
    """With the cleaning switched off, PostgreSQL refuses the NUL: 30 answered 200, 29 pending rows
    and 1 failed row with its error; the gateway's retry of it is a duplicate, not another failure."""
    rt, client = bridge
    monkeypatch.setattr(inbox_mod, "clean", lambda ib, now=None: ib)
    bodies = [_body(i) for i in range(30)]
    bodies[11] = _body(11, text="36.5\x00 正常")
    statuses = await _burst(client, clock, bodies)
    assert statuses == [200] * 30
    rows = await _rows(pg_db)
    assert len(rows) == 30
    failed = [r for r in rows if r.status == "failed"]
    assert len(failed) == 1 and failed[0].msg_id == "m11" and failed[0].text == ""
    assert "0x00" in failed[0].error and "36.5" not in failed[0].error
    assert sum(r.status == "pending" for r in rows) == 29
    assert "36.5" not in caplog.text
    await rt.state.delete("dedup:bridge:m11")  # a retry that the state store does not catch
    assert await _burst(client, clock, [bodies[11]]) == [200]
    assert len(await _rows(pg_db)) == 30


@pytest.mark.postgres
async def test_a_row_refused_even_as_failed_is_answered_400_alone(bridge, clock, pg_db, monkeypatch):
    rt, client = bridge
    monkeypatch.setattr(inbox_mod, "clean", lambda ib, now=None: ib)
    monkeypatch.setattr(inbox_mod, "_ascii", lambda v, limit: v)  # the failed row keeps its NUL too
    bodies = [_body(i) for i in range(10)]
    bodies[3] = _body(3, msg_id="m3\x00")
    statuses = await _burst(client, clock, bodies)
    assert statuses == [200] * 3 + [400] + [200] * 6
    assert len(await _rows(pg_db)) == 9


def test_clean_replaces_what_the_database_refuses():
    now = datetime(2026, 2, 10, tzinfo=timezone.utc)
    ib = Inbound(channel="bridge", msg_id="m\x00" + "1" * 300, sender_id="s\ud800", text="a\x00b\udc00",
                 sent_at=datetime(1, 1, 1, tzinfo=timezone.utc), chat_id="", kind="text" * 20)
    c = clean(ib, now)
    assert c.msg_id == "m\ufffd" + "1" * 126 and c.sender_id == "s\ufffd" and c.text == "a\ufffdb\ufffd"
    assert c.chat_id is None and len(c.kind) == 32 and c.sent_at == now
    ok = Inbound(channel="bridge", msg_id="1", sender_id="s", text="36.5", sent_at=now)
    assert clean(ok, now) is ok
