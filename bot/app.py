"""The aiohttp application and the process around it: `gridbot serve`.

Public API: `build_runtime(settings, clock=None, ...) -> Runtime`, `build_app(runtime) -> web.Application`,
`handle_now(runtime, inbound) -> list[OutboundMessage]` (the in-process "testbot" used by the demo and
tests), and `cli_serve(args)`.

Channels that are not configured still have their route, answering 404 with a line saying what to
set: a misdirected WeCom callback then shows up plainly in the gateway's log instead of vanishing,
and 404 (not 503) keeps WeCom from retrying a message no one here can read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy import select, text

from bot import httperrors
from bot.channels.base import Delivery, text_response
from bot.channels.console import ConsoleChannel
from bot.clock import Clock
from bot.config import Settings, load_settings
from bot.inbox import Inbox
from bot.metrics import Metrics
from bot.model import Inbound
from bot.pipeline import Pipeline
from bot.runtime import Runtime
from bot.sender import Sender
from bot.state import MemoryState, RedisState
from bot.web import setup_web
from scheduler.service import start_scheduler
from storage.db import Database
from storage.models import OutboundMessage
from storage.queries import undeliverable_escalations

log = logging.getLogger(__name__)

RUNTIME_KEY = web.AppKey("runtime", Runtime)
# Modules of other parts of gridbot that add routes (dashboard, API): `setup_routes(app, runtime)`.
NOT_CONFIGURED = {
    "wecom": "WeCom app: not configured (set GRIDBOT_WECOM_CORP_ID, GRIDBOT_WECOM_AGENT_ID, "
             "GRIDBOT_WECOM_SECRET, GRIDBOT_WECOM_TOKEN, GRIDBOT_WECOM_AES_KEY)",
    "aibot": "WeCom AI bot: not configured (set GRIDBOT_WECOM_AIBOT_TOKEN, GRIDBOT_WECOM_AIBOT_AES_KEY)",
    "bridge": "bridge: not configured (set GRIDBOT_BRIDGE_SECRET and GRIDBOT_BRIDGE_SEND_URL)",
}
ROUTES = {"wecom": "/wecom/callback", "aibot": "/wecom/aibot", "bridge": "/bridge/events"}


def build_runtime(
    settings: Settings,
    clock: Clock | None = None,
    *,
    db: Database | None = None,
    state: Any = None,
    dispatcher: Any = None,
    printer: Callable[[Delivery], None] | None = None,
    workers: int | None = None,
    inbox_window_s: float = 0.002,
) -> Runtime:
    """Everything one process needs, wired but not started (build_app's startup starts it).

    Tests pass their own `db`, `state` (e.g. a RedisState on their key prefix) and `dispatcher`.
    """
    clock = clock or Clock(settings.tz)
    db = db or Database(settings.database_url)
    if state is None:
        state = RedisState(settings.redis_url) if settings.redis_url else MemoryState()
    if dispatcher is None:
        from handlers import build_dispatcher

        dispatcher = build_dispatcher()
    rt = Runtime(settings=settings, db=db, clock=clock, state=state, dispatcher=dispatcher)
    rt.metrics = Metrics()
    redis = state.redis if isinstance(state, RedisState) else None
    prefix = state.prefix if isinstance(state, RedisState) else "gridbot:"
    inbox = Inbox(db, clock, redis=redis, prefix=prefix, window_s=inbox_window_s)
    n = workers if workers is not None else settings.workers
    rt.pipeline = Pipeline(rt, inbox, workers=n)
    rt.sender = Sender(rt)
    rt.pipeline.on_outbox = rt.sender.wake
    rt.channels["console"] = ConsoleChannel(printer)
    if settings.wecom_enabled:
        from bot.channels.wecom.app import WeComChannel

        rt.channels["wecom"] = WeComChannel(rt)
    if settings.aibot_enabled:
        from bot.channels.wecom.aibot import AIBotChannel

        rt.channels["aibot"] = AIBotChannel(rt)
    if settings.bridge_enabled:
        from bot.channels.bridge import BridgeChannel

        rt.channels["bridge"] = BridgeChannel(rt)
    return rt


def missing_channels(settings: Settings) -> list[str]:
    """One line for each channel that is not configured."""
    on = {"wecom": settings.wecom_enabled, "aibot": settings.aibot_enabled, "bridge": settings.bridge_enabled}
    return [NOT_CONFIGURED[k] for k, enabled in on.items() if not enabled]


ROLES = ("all", "web", "worker", "scheduler")
ROLE_KEY = web.AppKey("role", str)


def build_app(runtime: Runtime, *, background: bool = True, role: str = "all") -> web.Application:
    """The web application. With `background` its startup runs what `role` asks for: "all" the
    inbox workers, the outbox sender and the scheduler; "web" none of them (callbacks go into the
    inbox and the Redis stream, for the worker processes); tests pass background=False and drive
    `pipeline.process_due()` and `sender.run_once()` themselves."""
    # httperrors.middleware: bad input is a 400 with a reason on every route, never a 500.
    app = web.Application(client_max_size=64 * 1024, middlewares=[httperrors.middleware])
    app[RUNTIME_KEY] = runtime
    for ch in runtime.channels.values():
        ch.setup_routes(app)
    for name, path in ROUTES.items():
        if name not in runtime.channels:
            app.router.add_route("*", path, _not_configured(NOT_CONFIGURED[name]))
    app.router.add_get("/", _to_dashboard)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    setup_web(app, runtime)
    app[ROLE_KEY] = role
    if background:
        app.on_startup.append(_start_background)
    app.on_cleanup.append(_stop_background)
    return app


async def _to_dashboard(request: web.Request) -> web.Response:
    raise web.HTTPFound("/dashboard/")


def _not_configured(message: str):
    async def handler(request: web.Request) -> web.Response:
        return text_response(404, message)

    return handler


async def _start_background(app: web.Application) -> None:
    await start_role(app[RUNTIME_KEY], app.get(ROLE_KEY, "all"), app)


async def start_role(rt: Runtime, role: str, into: Any) -> None:
    """Starts this process's part: "worker" the inbox workers and the outbox sender, "scheduler"
    the scheduler (one leads among all processes: scheduler/leader.py), "all" both, "web" nothing."""
    if role in ("all", "worker"):
        rt.pipeline.start()
        rt.sender.start()
    if role in ("all", "scheduler"):
        into["scheduler"] = await start_scheduler(rt)


async def _stop_background(app: web.Application) -> None:
    await stop_parts(app[RUNTIME_KEY], app.get("scheduler"))


async def stop_parts(rt: Runtime, sched: Any) -> None:
    """The one shutdown order of a process's parts: scheduler, workers, inbox, sender, channels."""
    if sched is not None:
        with contextlib.suppress(Exception):
            await sched.shutdown()
    await rt.pipeline.stop()
    await rt.pipeline.inbox.close()
    await rt.sender.stop()
    for ch in rt.channels.values():
        with contextlib.suppress(Exception):
            await ch.close()


async def healthz(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME_KEY]
    failed = []
    try:
        async with rt.db.engine.connect() as conn:
            await asyncio.wait_for(conn.execute(text("SELECT 1")), 5)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        failed.append(f"database: {type(exc).__name__}")
    if isinstance(rt.state, RedisState):
        try:
            await asyncio.wait_for(rt.state.ping(), 5)
        except Exception as exc:  # noqa: BLE001
            failed.append(f"redis: {type(exc).__name__}")
    if failed:
        return text_response(503, "unavailable: " + "; ".join(failed))
    # Up, but alerts are not reaching people: 200 (restarting the process would not help), and a
    # body that says so for whoever watches it (a count only: this route needs no login; the log
    # and the dashboard name the escalations).
    try:
        async with rt.db.session() as s:
            stuck = await asyncio.wait_for(undeliverable_escalations(s), 5)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return text_response(503, f"unavailable: database: {type(exc).__name__}")
    if stuck:
        return text_response(200, f"degraded: {len(stuck)} escalations with undeliverable alerts")
    return text_response(200, "ok")


async def metrics(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME_KEY]
    with contextlib.suppress(Exception):  # the database may be down: serve the counters anyway
        await rt.metrics.refresh(rt)
    return web.Response(body=rt.metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4"})


async def handle_now(runtime: Runtime, inbound: Inbound) -> list[OutboundMessage]:
    """Accepts one message, handles it, delivers what is due, and returns the outbox rows this
    message produced (with their final status). A duplicate msg_id returns []."""
    row_id = await runtime.pipeline.accept(inbound)
    if row_id is None:
        return []
    await runtime.pipeline.process(row_id)
    await runtime.sender.deliver_due()
    async with runtime.db.session() as s:
        rows = await s.scalars(select(OutboundMessage).where(OutboundMessage.inbound_id == row_id)
                               .order_by(OutboundMessage.id))
        return list(rows.all())


# -- gridbot serve ----------------------------------------------------------------------------------


async def warn_unreachable(rt: Runtime) -> list[int]:
    """A WARNING for the staff none of whose channels this process has: their alerts go nowhere
    (each escalation then climbs at once). Returns their ids."""
    from handlers.people import unreachable_staff

    try:
        async with rt.db.session() as s:
            staff = await unreachable_staff(s, rt.channels)
    except Exception as exc:  # noqa: BLE001 - never keeps the server from starting
        log.warning("could not check which staff can be reached (%s)", type(exc).__name__)
        return []
    if staff:
        channels = sorted({ch for st in staff for ch, _ in st.contacts})
        log.warning("%d staff members have no configured channel (%s), alerts to them cannot be delivered "
                    "and their escalations go up the chain at once: staff ids %s",
                    len(staff), ", ".join(channels), ", ".join(str(st.id) for st in staff))
    return [st.id for st in staff]


def listen_socket(host: str, port: int) -> Any:
    """The listening socket, bound before anything else is taken (the database's migrations, the
    scheduler's leadership): a port in use is found while nothing has started yet."""
    import socket

    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp does: TIME_WAIT is fine
        sock.bind(addr)
        sock.listen(1024)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def cli_serve(args: Any) -> int:
    import sys

    settings = load_settings()  # a bad setting: bot.cli prints one line naming it, exit 2
    host = getattr(args, "host", None) or settings.host
    port = getattr(args, "port", None) or settings.port
    role = getattr(args, "role", None) or "all"
    n_workers = getattr(args, "workers", None) or 0
    if (role != "all" or n_workers) and not settings.redis_url:
        log.warning("gridbot serve --role %s%s without GRIDBOT_REDIS_URL: processes share no stream, locks or "
                    "dedup; new messages reach other processes' workers only by the database sweep",
                    role, f" --workers {n_workers}" if n_workers else "")
    if role in ("worker", "scheduler"):  # no HTTP: only the web processes listen
        return _run_headless(settings, role)
    try:
        sock = listen_socket(host, port)
    except OSError as exc:
        print(f"gridbot serve: cannot listen on {host}:{port}: {exc.strerror or exc} "
              "(another process has the port? set GRIDBOT_PORT or --port)", file=sys.stderr)
        return 2
    # Migrating at start is safe (Alembic's upgrade to head is a no-op when current) and spares a
    # first-time user the separate `gridbot init`.
    from storage.migrate import _safe_url, upgrade

    try:
        upgrade(settings.database_url)
    except Exception as exc:  # noqa: BLE001 - one line, not a traceback
        sock.close()
        print(f"gridbot serve: the database {_safe_url(settings.database_url)} (GRIDBOT_DATABASE_URL) cannot be "
              f"used: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}", file=sys.stderr)
        return 2
    log.info("database: %s", _safe_url(settings.database_url))
    log.info("state: %s", "Redis" if settings.redis_url else "in-process (one process only; set GRIDBOT_REDIS_URL to share)")
    for line in missing_channels(settings):
        log.info("%s", line)
    children = _start_workers(n_workers)
    try:
        # with worker processes of its own, this process is the web and the scheduler
        asyncio.run(_serve(settings, host, port, sock, "web+scheduler" if n_workers and role == "all" else role,
                           children))
    finally:
        _stop_workers(children)
    return 0


def _worker_cmd() -> list[str]:
    import sys

    return [sys.executable, "-m", "bot", "serve", "--role", "worker"]


def _start_workers(n: int) -> list[Any]:
    """`gridbot serve --workers N`: N worker processes (`--role worker`), stopped with this one."""
    import subprocess

    procs = [subprocess.Popen(_worker_cmd()) for _ in range(n)]
    if procs:
        log.info("started %d worker processes (pids %s)", n, ", ".join(str(p.pid) for p in procs))
    return procs


async def _watch_workers(children: list[Any]) -> None:
    """Starts again a worker process that died (its rows are taken over: stream claim, sweep)."""
    import subprocess

    while True:
        await asyncio.sleep(1.0)
        for i, p in enumerate(children):
            if p.poll() is not None:
                log.warning("worker process %s exited (%s); starting another", p.pid, p.returncode)
                children[i] = subprocess.Popen(_worker_cmd())


def _stop_workers(children: list[Any]) -> None:
    import subprocess

    for p in children:
        if p.poll() is None:
            p.terminate()
    for p in children:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()


def _run_headless(settings: Settings, role: str) -> int:
    """`gridbot serve --role worker|scheduler`: the part without HTTP, until SIGTERM/SIGINT."""
    from storage.migrate import upgrade

    upgrade(settings.database_url)

    async def go() -> None:
        rt = build_runtime(settings)
        parts: dict[str, Any] = {}
        await start_role(rt, role, parts)
        log.info("gridbot %s running (pid %s)", role, os.getpid())
        try:
            await until_signalled()
        finally:
            await stop_parts(rt, parts.get("scheduler"))
            await rt.state.close()
            await rt.db.dispose()

    asyncio.run(go())
    return 0


async def until_signalled() -> None:
    """Waits for SIGINT or SIGTERM: how every role of `gridbot serve` is told to stop."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _serve(settings: Settings, host: str, port: int, sock: Any = None, role: str = "all",
                 children: list[Any] | None = None) -> None:
    from bot.doctor import log_report

    rt = build_runtime(settings)
    await log_report(settings, rt.db)
    await warn_unreachable(rt)
    app = build_app(rt, role="scheduler" if role == "web+scheduler" else role)
    watcher = asyncio.ensure_future(_watch_workers(children)) if children else None
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = (web.SockSite(runner, sock) if sock is not None else web.TCPSite(runner, host, port, backlog=1024))
    await site.start()
    log.info("gridbot listening on http://%s:%s (channels: %s)", host, port, ", ".join(sorted(rt.channels)))
    try:
        await until_signalled()
    finally:
        if watcher is not None:
            watcher.cancel()
        await runner.cleanup()
        await rt.state.close()
        await rt.db.dispose()
