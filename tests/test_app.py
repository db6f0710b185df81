"""The application: /healthz, /metrics, several apps side by side, and `gridbot serve` for real."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from bot.app import build_app, build_runtime, handle_now, missing_channels
from bot.dispatch import Context, Dispatcher, Router
from bot.model import Inbound
from bot.state import RedisState
from storage.db import Database

ROOT = Path(__file__).resolve().parents[1]


def echo() -> Dispatcher:
    r = Router("echo")

    @r.message()
    async def reply(ctx: Context):
        return [ctx.reply("ok")]

    return Dispatcher([r])


async def test_healthz_ok(db, settings, clock, aiohttp_client):
    client = await aiohttp_client(build_app(build_runtime(settings, clock, db=db, dispatcher=echo()), background=False))
    resp = await client.get("/healthz")
    assert resp.status == 200 and await resp.text() == "ok"


async def test_healthz_names_what_failed(settings, clock, aiohttp_client):
    import redis.asyncio as aioredis

    db = Database("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    state = RedisState(aioredis.from_url("redis://127.0.0.1:1/0"), prefix="x:")
    rt = build_runtime(settings, clock, db=db, state=state, dispatcher=echo())
    client = await aiohttp_client(build_app(rt, background=False))
    resp = await client.get("/healthz")
    text = await resp.text()
    assert resp.status == 503 and "database" in text and "redis" in text
    await state.redis.aclose()
    await db.dispose()


async def test_metrics_per_app(sqlite_db, settings, clock, aiohttp_client):
    rt1 = build_runtime(settings, clock, db=sqlite_db, dispatcher=echo())
    rt2 = build_runtime(settings, clock, db=sqlite_db, dispatcher=echo())
    c1 = await aiohttp_client(build_app(rt1, background=False))
    c2 = await aiohttp_client(build_app(rt2, background=False))
    await handle_now(rt1, Inbound(channel="console", msg_id="1", sender_id="u", text="hi", sent_at=clock.now()))
    await handle_now(rt1, Inbound(channel="console", msg_id="2", sender_id="u", text="", sent_at=clock.now(),
                                  kind="image"))
    t1 = await (await c1.get("/metrics")).text()
    t2 = await (await c2.get("/metrics")).text()
    assert 'gridbot_messages_in_total{channel="console",kind="text"} 1.0' in t1
    assert 'gridbot_messages_in_total{channel="console",kind="image"} 1.0' in t1
    assert "gridbot_messages_in_total{" not in t2  # its own registry
    for name in ("gridbot_escalations_open 0.0", "gridbot_outbox_depth 0.0", "gridbot_handler_latency_seconds_count 2.0"):
        assert name in t1


def test_missing_channels_lines(settings):
    lines = missing_channels(settings)
    assert len(lines) == 3 and all("not configured" in x for x in lines)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_serve_starts_on_nothing_but_sqlite(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDBOT_")}
    env.update(GRIDBOT_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/fresh.db", GRIDBOT_CONFIG=str(tmp_path / "none.toml"))
    proc = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        ok = False
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                        ok = resp.status == 200 and await resp.text() == "ok"
                        break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.2)
        assert ok
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert "WeCom app: not configured (set GRIDBOT_WECOM_CORP_ID" in out
    assert "bridge: not configured" in out and "AI bot: not configured" in out
    assert (tmp_path / "fresh.db").exists()
