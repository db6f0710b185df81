"""`gridbot bench callbacks`: encrypted WeCom callbacks answered per second, and how fast.

The real application runs in a subprocess on 127.0.0.1 (its own core); a load generator posts N
callbacks, each a unique MsgId from a distinct sender, encrypted with wechatpy beforehand, over many
concurrent connections, and times every answer. Measured in the same run: a bare aiohttp handler
that only answers "success" (the ceiling of this machine and this load generator), the app on
SQLite, and the app on PostgreSQL (a fresh temporary database, dropped after).

By default the server runs no inbox workers (`--workers 0`), so the figure is the callback path
itself — verify, decrypt, one batched INSERT, answer; `--workers N` measures it with handling
competing for the same core.

    gridbot bench callbacks [--n 5000] [--concurrency 64] [--targets bare,sqlite,postgres]
                            [--rate 1000] [--window-ms 2] [--workers 0] [--pg-admin-url URL]

Two tables: as fast as the server answers (closed loop: answers/s, and answer times that include
the queue at saturation), and offered at a fixed `--rate` (open loop: the answer times a steady
1,000 callbacks a second actually see).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.pg import create_temp_database, drop_database

TOKEN = "benchtoken"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
CORP_ID = "wwbenchcorp"
PG_ADMIN = os.environ.get("GRIDBOT_BENCH_PG", os.environ.get("GRIDBOT_TEST_PG",
                                                               "postgresql+asyncpg://postgres@127.0.0.1:5432/test"))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gridbot bench callbacks")
    p.add_argument("--n", type=int, default=5000, help="callbacks per target")
    p.add_argument("--concurrency", type=int, default=64, help="concurrent connections")
    p.add_argument("--targets", default="bare,sqlite,postgres")
    p.add_argument("--rate", type=float, default=1000.0,
                   help="also offer callbacks at this fixed rate (open loop) and time the answers; 0: skip")
    p.add_argument("--window-ms", type=float, default=2.0, help="inbox group-commit window (0: one INSERT each)")
    p.add_argument("--workers", type=int, default=None, help="inbox workers (callbacks: 0, wave: 4)")
    p.add_argument("--pg-admin-url", default=PG_ADMIN)
    p.add_argument("--fevers", type=int, default=None, help="wave: households posting a fever, last (default 1%%)")
    p.add_argument("--wave", action="store_true", help="the morning wave end to end through the workers "
                   "(--n households, --targets sqlite,postgres, --workers)")
    # internal: the server side
    p.add_argument("--serve", choices=["bare", "app"], help=argparse.SUPPRESS)
    p.add_argument("--db", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return p


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.serve:
        args.workers = args.workers or 0
        asyncio.run(_serve(args))
        return 0
    if args.wave:
        args.workers = 4 if args.workers is None else args.workers
        return asyncio.run(_wave_main(args))
    args.workers = args.workers or 0
    return asyncio.run(_main(args))


# -- server side ---------------------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    from aiohttp import web

    if args.serve == "bare":
        app = web.Application()

        async def ok(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(text="success")

        app.router.add_post("/wecom/callback", ok)
        rt = None
    else:
        from bot.app import build_app, build_runtime
        from bot.config import Settings
        from bot.dispatch import Dispatcher

        settings = Settings(database_url=args.db, wecom_corp_id=CORP_ID, wecom_agent_id="1000002",
                            wecom_secret="unused", wecom_token=TOKEN, wecom_aes_key=AES_KEY,
                            wecom_api_base="http://127.0.0.1:9")
        rt = build_runtime(settings, dispatcher=Dispatcher([]), workers=args.workers,
                           inbox_window_s=args.window_ms / 1000)
        app = build_app(rt, background=args.workers > 0)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=4096)
    await site.start()
    print("READY", flush=True)
    loop = asyncio.get_running_loop()
    try:
        # "CPU" from the parent: report the CPU seconds spent since the last mark; EOF: stop.
        cpu0 = time.process_time()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            cpu1 = time.process_time()
            print(f"CPU {cpu1 - cpu0:.6f}", flush=True)
            cpu0 = cpu1
    finally:
        await runner.cleanup()
        if rt is not None:
            await rt.db.dispose()


# -- load generator ----------------------------------------------------------------------------------


def _callbacks(n: int, tag: str) -> list[tuple[dict[str, str], bytes]]:
    import xmltodict
    from wechatpy.enterprise.crypto import WeChatCrypto

    crypto = WeChatCrypto(TOKEN, AES_KEY, CORP_ID)
    out = []
    ts = str(int(time.time()))
    for i in range(n):
        plain = (f"<xml><ToUserName>{CORP_ID}</ToUserName><FromUserName>resident{tag}{i}</FromUserName>"
                 f"<CreateTime>{ts}</CreateTime><MsgType>text</MsgType><Content>3-2-{500 + i % 100} 36.{i % 10} 正常"
                 f"</Content><MsgId>{tag}{i}</MsgId><AgentID>1000002</AgentID></xml>")
        d = xmltodict.parse(crypto.encrypt_message(plain, str(i), ts))["xml"]
        body = (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><Encrypt><![CDATA[{d['Encrypt']}]]></Encrypt>"
                f"<AgentID><![CDATA[1000002]]></AgentID></xml>").encode()
        out.append(({"msg_signature": d["MsgSignature"], "timestamp": ts, "nonce": str(i)}, body))
    return out


async def _load(port: int, calls: list[tuple[dict[str, str], bytes]], concurrency: int,
                rate: float | None = None) -> dict[str, float]:
    """Posts every call over `concurrency` connections: as fast as answers come (closed loop), or
    with `rate`, at that many a second whatever the answers do (open loop; a late start counts in
    the answer time, so a stalled server cannot hide its queue)."""
    import aiohttp

    url = f"http://127.0.0.1:{port}/wecom/callback"
    lat: list[float] = []
    errors = 0
    nxt = 0
    conn = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=conn) as http:

        async def worker() -> None:
            nonlocal errors, nxt
            while nxt < len(calls):
                i = nxt
                nxt += 1
                params, body = calls[i]
                start = time.perf_counter()
                if rate:
                    due = t0 + i / rate
                    if due > start:
                        await asyncio.sleep(due - start)
                    start = due
                async with http.post(url, params=params, data=body) as resp:
                    ok = resp.status == 200 and await resp.text() == "success"
                lat.append(time.perf_counter() - start)
                errors += not ok

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    lat.sort()
    return {"n": len(lat), "rate": len(lat) / wall, "p50": lat[len(lat) // 2] * 1000,
            "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, "mean": statistics.fmean(lat) * 1000,
            "errors": errors}


async def _server_cpu(proc: subprocess.Popen) -> float:
    proc.stdin.write("CPU\n")  # type: ignore[union-attr]
    proc.stdin.flush()  # type: ignore[union-attr]
    line = await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)  # type: ignore[union-attr]
    return float(line.split()[1])


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _target(name: str, args: argparse.Namespace, db_url: str | None) -> dict[str, float]:
    port = _free_port()
    cmd = [sys.executable, "-m", "benchmarks.bench_callbacks", "--serve", "bare" if name == "bare" else "app",
           "--port", str(port), "--workers", str(args.workers), "--window-ms", str(args.window_ms)]
    if db_url:
        cmd += ["--db", db_url]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    try:
        line = await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)  # type: ignore[union-attr]
        if line.strip() != "READY":
            raise RuntimeError(f"{name} server did not start")
        tag = uuid.uuid4().hex[:6]
        await _load(port, _callbacks(min(200, args.n), "w" + tag), args.concurrency)  # warm-up
        calls = _callbacks(args.n, tag)
        await _server_cpu(proc)
        res = await _load(port, calls, args.concurrency)
        # The server's own CPU per callback: the figure that noisy neighbours on a shared machine
        # do not move much.
        res["cpu_us"] = await _server_cpu(proc) / args.n * 1e6
        if args.rate:
            paced = await _load(port, _callbacks(args.n, "p" + tag), args.concurrency, rate=args.rate)
            res.update(paced_rate=paced["rate"], paced_p50=paced["p50"], paced_p99=paced["p99"],
                       errors=res["errors"] + paced["errors"])
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    if db_url:
        res["stored"] = await _count(db_url)
    return res


async def _count(url: str) -> float:
    from sqlalchemy import func, select

    from storage.db import Database
    from storage.models import InboundMessage

    db = Database(url)
    try:
        async with db.session() as s:
            return float(await s.scalar(select(func.count()).select_from(InboundMessage)) or 0)
    finally:
        await db.dispose()


def _migrate(url: str) -> None:
    from storage.migrate import upgrade

    upgrade(url)


async def _main(args: argparse.Namespace) -> int:
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    results: dict[str, dict[str, float]] = {}
    loop = asyncio.get_running_loop()
    print(f"gridbot bench callbacks: {args.n} encrypted WeCom callbacks per target, {args.concurrency} connections, "
          f"group commit {args.window_ms:g} ms, server workers {args.workers}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        for name in targets:
            if name == "bare":
                results[name] = await _target(name, args, None)
            elif name == "sqlite":
                url = f"sqlite+aiosqlite:///{tmp}/bench.db"
                await loop.run_in_executor(None, _migrate, url)
                results[name] = await _target(name, args, url)
            elif name == "postgres":
                try:
                    url = await create_temp_database("gridbot_bench", args.pg_admin_url)
                except OSError as exc:
                    print(f"postgres: skipped ({exc})")
                    continue
                try:
                    await loop.run_in_executor(None, _migrate, url)
                    results[name] = await _target(name, args, url)
                finally:
                    await drop_database(url, args.pg_admin_url)
            else:
                print(f"unknown target {name!r}", file=sys.stderr)
                return 2
    base = results.get("bare")
    print(f"{'target':<12}{'answered/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'server CPU/cb':>15}{'errors':>8}"
          f"{'stored':>8}{'vs bare':>9}")
    for name, r in results.items():
        ratio = f"{r['rate'] / base['rate']:.2f}" if base else "-"
        stored = f"{int(r['stored'])}" if "stored" in r else "-"
        print(f"{name:<12}{r['rate']:>12.0f}{r['p50']:>9.1f}{r['p99']:>9.1f}{r['cpu_us']:>12.0f} us"
              f"{int(r['errors']):>8}{stored:>8}{ratio:>9}")
    if args.rate:
        print(f"offered at {args.rate:g}/s (open loop): answer times")
        print(f"{'target':<12}{'answered/s':>12}{'p50 ms':>9}{'p99 ms':>9}")
        for name, r in results.items():
            print(f"{name:<12}{r['paced_rate']:>12.0f}{r['paced_p50']:>9.1f}{r['paced_p99']:>9.1f}")
    extra = 2 * args.n if args.rate else args.n
    bad = [n for n, r in results.items() if r["errors"] or ("stored" in r and r["stored"] < extra + min(200, args.n))]
    if bad:
        print(f"FAILED: errors or lost callbacks on {', '.join(bad)}")
        return 1
    return 0


# -- gridbot bench wave: the morning wave end to end ----------------------------------------------------


class _NullChannel:
    """Stands in for WeCom in the wave: accepts every send (the sender's own work is still done)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent = 0
        self.alerts: dict[int, float] = {}  # inbound row id -> monotonic time its first alert was sent

    def setup_routes(self, app: object) -> None:
        return None

    async def pace(self, d: object) -> float:
        return 0.0

    async def send(self, d: object) -> None:
        self.sent += 1
        if getattr(d, "kind", None) == "escalation" and getattr(d, "inbound_id", None):
            self.alerts.setdefault(d.inbound_id, time.monotonic())  # type: ignore[attr-defined]

    async def close(self) -> None:
        return None


async def _seed(url: str, households: int) -> None:
    """One street, grids of 300 households, buildings of 48, one resident a household on WeCom."""
    from sqlalchemy import insert

    from storage.db import Database
    from storage.models import Building, Community, Grid, Household, Resident, Staff, StaffScope, Street

    db = Database(url)
    per_building, per_grid = 48, 300
    n_buildings = -(-households // per_building)
    n_grids = -(-households // per_grid)
    try:
        async with db.session() as s:
            await s.execute(insert(Street), [{"id": 1, "name": "天桥街道"}])
            await s.execute(insert(Community), [{"id": 1, "name": "北园社区", "street_id": 1}])
            await s.execute(insert(Grid), [{"id": g + 1, "name": f"网格{g + 1}", "community_id": 1}
                                           for g in range(n_grids)])
            await s.execute(insert(Building), [
                {"id": b + 1, "name": f"{b + 1}号楼", "number": str(b + 1), "grid_id": 1 + b * per_building // per_grid,
                 "chat_id": f"bldg-{b + 1}", "channel": "wecom"} for b in range(n_buildings)])
            hh = [{"id": i + 1, "building_id": 1 + i // per_building, "unit": str(1 + (i % per_building) // 16),
                   "room": str(101 + (i % 16) // 2 * 100 + i % 2)} for i in range(households)]
            for k in range(0, len(hh), 5000):
                await s.execute(insert(Household), hh[k:k + 5000])
            rs = [{"household_id": i + 1, "name": f"居民{i + 1}", "channel": "wecom", "channel_user_id": f"r{i + 1}",
                   "category": "常住"} for i in range(households)]
            for k in range(0, len(rs), 5000):
                await s.execute(insert(Resident), rs[k:k + 5000])
            # one grid worker a grid, on WeCom: the fevers' alerts go to them
            await s.execute(insert(Staff), [{"id": g + 1, "name": f"网格员{g + 1}", "role": "网格员", "channel": "wecom",
                                             "channel_user_id": f"s{g + 1}"} for g in range(n_grids)])
            await s.execute(insert(StaffScope), [{"staff_id": g + 1, "grid_id": g + 1} for g in range(n_grids)])
        if not db.is_sqlite:
            from sqlalchemy import text

            async with db.engine.begin() as conn:  # the ids were given: move the sequences on
                for t in ("streets", "communities", "grids", "buildings", "households", "staff"):
                    await conn.execute(text(f"SELECT setval('{t}_id_seq', (SELECT max(id) FROM {t}))"))
    finally:
        await db.dispose()


_WAVE_TEXTS = ("36.5 正常", "全家都好", "今天36度8，无异常", "报平安", "36.6 一切正常", "体温36.4 全家平安")
_FEVER_TEXTS = ("发烧38.5度", "体温38.2，头疼", "孩子发烧了38.9", "38.6 咳嗽")


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))] if xs else float("nan")


async def _wave_run(url: str, households: int, workers: int, real: bool, tag: str,
                    fevers: int = 0) -> dict[str, float]:
    """The wave: every household posts once; the last `fevers` post a fever, behind the backlog.
    Fever latency: from its accept to its row done (empty dispatcher) or to its alert's send."""
    from sqlalchemy import func, select

    from bot.app import build_runtime
    from bot.config import Settings
    from bot.dispatch import Dispatcher
    from bot.model import Inbound
    from storage.models import InboundMessage, OutboundMessage

    settings = Settings(database_url=url)
    rt = build_runtime(settings, dispatcher=None if real else Dispatcher([]), workers=workers)
    null = _NullChannel("wecom")
    rt.channels["wecom"] = null
    rt.pipeline.start()
    rt.sender.start()
    now = rt.clock.now()
    sem = asyncio.Semaphore(512)

    fever_at: dict[int, float] = {}
    first_fever = households - fevers

    async def one(i: int) -> None:
        async with sem:
            fever = i >= first_fever
            text = _FEVER_TEXTS[i % len(_FEVER_TEXTS)] if fever else _WAVE_TEXTS[i % len(_WAVE_TEXTS)]
            t = time.monotonic()
            rid = await rt.pipeline.accept(Inbound(channel="wecom", msg_id=f"{tag}{i}", sender_id=f"r{i + 1}",
                                                   text=text, sent_at=now))
            if fever and rid is not None:
                fever_at[rid] = t

    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(first_fever)))
        await asyncio.gather(*(one(i) for i in range(first_fever, households)))  # the alarms, last
        t_accept = time.perf_counter() - t0
        fever_done: dict[int, float] = {}
        while True:
            async with rt.db.session() as s:
                left = await s.scalar(select(func.count()).select_from(InboundMessage).where(
                    InboundMessage.status == "pending", InboundMessage.msg_id.like(f"{tag}%")))
                unsent = await s.scalar(select(func.count()).select_from(OutboundMessage).where(
                    OutboundMessage.status.in_(("pending", "sending"))))
                if fever_at and not real and len(fever_done) < len(fever_at):
                    got = (await s.execute(select(InboundMessage.id).where(
                        InboundMessage.id.in_([r for r in fever_at if r not in fever_done]),
                        InboundMessage.status == "done"))).scalars().all()
                    tnow = time.monotonic()
                    for r in got:
                        fever_done[r] = tnow
            if not left and not unsent:
                break
            await asyncio.sleep(0.05 if fever_at and len(fever_done) < len(fever_at) else 0.2)
        t_done = time.perf_counter() - t0
        async with rt.db.session() as s:
            failed = await s.scalar(select(func.count()).select_from(InboundMessage).where(
                InboundMessage.status == "failed", InboundMessage.msg_id.like(f"{tag}%")))
    finally:
        await rt.pipeline.stop()
        await rt.sender.stop()
        await rt.pipeline.inbox.close()
        await rt.db.dispose()
    ends = null.alerts if real else fever_done
    lat = [ends[r] - t for r, t in fever_at.items() if r in ends]
    return {"accept_rate": households / t_accept, "rate": households / t_done, "seconds": t_done,
            "replies": null.sent, "failed": failed or 0, "fever_p50": _pct(lat, 0.5), "fever_p99": _pct(lat, 0.99),
            "fever_missing": len(fever_at) - len(lat)}


async def _wave_main(args: argparse.Namespace) -> int:
    n = args.n
    targets = [t.strip() for t in args.targets.split(",") if t.strip() and t.strip() != "bare"]
    loop = asyncio.get_running_loop()
    print(f"gridbot bench wave: {n} households check in (one message each) through {args.workers} inbox workers "
          f"in one process, {os.cpu_count()} CPUs; replies to a null channel")
    fevers = max(1, n // 100) if args.fevers is None else args.fevers
    print(f"the last {fevers} households post a fever (behind the backlog): fever p50/p99 is the time from its "
          "accept to its row done (empty) or to its alert's send (handlers)")
    print(f"{'target':<10}{'dispatcher':<12}{'inbox/s':>9}{'handled/s':>11}{'seconds':>9}{'replies':>9}"
          f"{'failed':>8}{'305,147 hh':>12}{'fever p50':>11}{'fever p99':>11}")
    bad = False
    with tempfile.TemporaryDirectory() as tmp:
        for name in targets:
            dbname = None
            if name == "sqlite":
                url = f"sqlite+aiosqlite:///{tmp}/wave.db"
            elif name == "postgres":
                try:
                    url = dbname = await create_temp_database("gridbot_wave", args.pg_admin_url)
                except OSError as exc:
                    print(f"postgres: skipped ({exc})")
                    continue
            else:
                print(f"unknown target {name!r}", file=sys.stderr)
                return 2
            try:
                await loop.run_in_executor(None, _migrate, url)
                await _seed(url, n)
                for real in (False, True):
                    r = await _wave_run(url, n, args.workers, real, ("real" if real else "base") + uuid.uuid4().hex[:4],
                                        fevers)
                    whole = 305_147 / r["rate"] / 60
                    print(f"{name:<10}{'handlers' if real else 'empty':<12}{r['accept_rate']:>9.0f}{r['rate']:>11.0f}"
                          f"{r['seconds']:>9.1f}{int(r['replies']):>9}{int(r['failed']):>8}{whole:>9.1f} min"
                          f"{r['fever_p50']:>10.2f}s{r['fever_p99']:>10.2f}s")
                    bad = bad or bool(r["failed"]) or bool(r["fever_missing"])
            finally:
                if dbname:
                    await drop_database(dbname, args.pg_admin_url)
    print("(the last column extrapolates the measured rate to the district's 305,147 households)")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(run(sys.argv[1:]))
