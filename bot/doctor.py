"""`gridbot doctor`: what in this deployment needs a person, checked from the configuration and the database.

    configuration   every GRIDBOT_* setting parses (a bad one is named)
    database        reachable; schema at the newest revision (else: run `gridbot init`)
    redis           reachable, when GRIDBOT_REDIS_URL is set
    time zone       GRIDBOT_TIMEZONE, the time there now, and this machine's own zone
    channels        configured (WeCom app, AI bot, bridge) vs used by the roster (staff's 渠道 and
                    alternates, buildings' 渠道)
    staff           enabled staff none of whose channels is configured: no alert reaches them
    bindings        registrations waiting for a worker's confirmation for more than a day
    outbox          messages that failed or reached no one (`gridbot outbox --failed` lists them)
    escalations     open escalations whose alerts could not be delivered

Each finding is `ok`, `info` or `NEEDS` (a person must act); the command exits 1 when any finding
needs a person, else 0. `gridbot serve` runs the same checks at start and logs them (it starts anyway).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time as _time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger("gridbot.doctor")

OK, INFO, NEEDS = "ok", "info", "NEEDS"
CHANNEL_SETTINGS = {
    "wecom": "GRIDBOT_WECOM_CORP_ID, GRIDBOT_WECOM_AGENT_ID, GRIDBOT_WECOM_SECRET, GRIDBOT_WECOM_TOKEN, "
             "GRIDBOT_WECOM_AES_KEY",
    "aibot": "GRIDBOT_WECOM_AIBOT_TOKEN, GRIDBOT_WECOM_AIBOT_AES_KEY",
    "bridge": "GRIDBOT_BRIDGE_SECRET, GRIDBOT_BRIDGE_SEND_URL",
}
MAX_NAMED = 30


@dataclass
class Finding:
    level: str
    topic: str
    text: str

    def line(self) -> str:
        return f"{self.level:<5}  {self.topic}: {self.text}"


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    def add(self, level: str, topic: str, text: str) -> None:
        self.findings.append(Finding(level, topic, text))

    @property
    def needs_person(self) -> list[Finding]:
        return [f for f in self.findings if f.level == NEEDS]

    @property
    def exit_code(self) -> int:
        return 1 if self.needs_person else 0


def configured_channels(settings: Any) -> set[str]:
    on = set()
    if settings.wecom_enabled:
        on.add("wecom")
    if settings.aibot_enabled:
        on.add("aibot")
    if settings.bridge_enabled:
        on.add("bridge")
    return on


def _local_zone() -> str:
    return _time.tzname[0] if _time.tzname else "unknown"


async def check(settings: Any, *, now: datetime | None = None, db: Any = None) -> Report:
    """All checks but the configuration's own (the caller has loaded `settings`)."""
    from sqlalchemy import func, select, text

    from handlers.people import contacts
    from storage.db import Database
    from storage.migrate import _safe_url
    from storage.models import Building, Grid, OutboundMessage, PendingBinding, Staff, StaffScope
    from storage.queries import undeliverable_escalations

    report = Report()
    tz = settings.tz
    now = (now or datetime.now(tz)).astimezone(tz)
    report.add(OK, "configuration", "every setting is valid")
    report.add(OK, "time zone", f"{settings.timezone}: now {now:%Y-%m-%d %H:%M} {now:%Z} (UTC{now:%z}); "
               f"this machine's own zone is {_local_zone()}; the bot's times and its log use {settings.timezone}")

    url = settings.database_url
    safe = _safe_url(url)
    if url.startswith("sqlite") and db is None:
        from sqlalchemy.engine import make_url

        path = make_url(url).database
        if path and path != ":memory:" and not Path(path).exists():
            report.add(NEEDS, "database", f"{safe}: the file does not exist yet (run `gridbot init`)")
            return report
    own = db is None
    db = db or Database(url)
    try:
        try:
            async with db.engine.connect() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), 10)
                current = await conn.run_sync(_current_revision)
        except Exception as exc:  # noqa: BLE001 - reported
            report.add(NEEDS, "database", f"{safe}: cannot connect ({type(exc).__name__}: {str(exc)[:200]})")
            return report
        head = _head_revision(url)
        if current != head:
            report.add(NEEDS, "database", f"{safe}: schema at {current or 'nothing'}, newest is {head} "
                       "(run `gridbot init`)")
            return report
        report.add(OK, "database", f"{safe} (schema {head})")

        await _check_redis(settings, report)

        on = configured_channels(settings)
        async with db.session() as s:
            staff = [st for st in (await s.scalars(select(Staff).order_by(Staff.id))).all()
                     if st.disabled_at is None]
            buildings = (await s.execute(select(Building.channel, func.count()).group_by(Building.channel))).all()
            scopes = (await s.execute(select(StaffScope.staff_id, Grid.name)
                                      .join(Grid, Grid.id == StaffScope.grid_id))).all()
            failed = (await s.execute(select(OutboundMessage.status, OutboundMessage.kind, func.count())
                                      .where(OutboundMessage.status.in_(("failed", "unreachable")))
                                      .group_by(OutboundMessage.status, OutboundMessage.kind))).all()
            stuck = await undeliverable_escalations(s)
            waiting = (await s.scalar(select(func.count()).select_from(PendingBinding)
                                      .where(PendingBinding.status == "pending",
                                             PendingBinding.created_at < now - timedelta(days=1)))) or 0
            pending = (await s.scalar(select(func.count()).select_from(PendingBinding)
                                      .where(PendingBinding.status == "pending"))) or 0

        # channels: configured vs used
        used_by_staff: Counter[str] = Counter()
        for st in staff:
            for ch in {c for c, _ in st.contacts}:
                used_by_staff[ch] += 1
        used_by_buildings = {ch: n for ch, n in buildings}
        used = set(used_by_staff) | set(used_by_buildings)
        report.add(INFO, "channels", "configured: " + (", ".join(sorted(on)) or "none") + "; used by the roster: "
                   + (", ".join(f"{ch} ({used_by_staff.get(ch, 0)} staff, {used_by_buildings.get(ch, 0)} buildings)"
                                for ch in sorted(used)) or "none"))
        for ch in sorted(used - on - {"console"}):
            report.add(NEEDS, "channels", f"{ch} is used by {used_by_staff.get(ch, 0)} staff and "
                       f"{used_by_buildings.get(ch, 0)} buildings but not configured (set {CHANNEL_SETTINGS.get(ch, '?')})")

        # staff who cannot be reached
        grids: dict[int, list[str]] = {}
        for sid, gname in scopes:
            grids.setdefault(sid, []).append(gname)
        lost = [st for st in staff if not any(ch in on for ch, _ in contacts(st))]
        if not staff:
            report.add(NEEDS, "staff", "no staff in the database (import a roster, or `gridbot staff add`)")
        elif lost:
            named = "; ".join(f"{st.role}{st.name} ({st.channel_user_id}, {'、'.join(grids.get(st.id, [])) or 'street'}: "
                              f"{'、'.join(ch for ch, _ in st.contacts)})" for st in lost[:MAX_NAMED])
            more = f"; and {len(lost) - MAX_NAMED} more" if len(lost) > MAX_NAMED else ""
            report.add(NEEDS, "staff", f"{len(lost)} of {len(staff)} cannot be reached on a configured channel, "
                       f"so their alerts go nowhere: {named}{more}")
        else:
            report.add(OK, "staff", f"all {len(staff)} can be reached")

        if waiting:
            report.add(NEEDS, "bindings", f"{waiting} registrations have waited more than a day for a grid "
                       "worker's confirmation (确认 3-2-501 姓名, or the dashboard)")
        else:
            report.add(OK, "bindings", f"{pending} registrations waiting for confirmation, none older than a day")

        if failed:
            parts = ", ".join(f"{n} {status} ({kind})" for status, kind, n in sorted(failed))
            report.add(NEEDS, "outbox", f"{parts}: see `gridbot outbox --failed`")
        else:
            report.add(OK, "outbox", "no failed messages")
        if stuck:
            report.add(NEEDS, "escalations", f"{len(stuck)} open escalations whose alerts reached no one: "
                       + ", ".join(f"E{e}" for e in stuck[:MAX_NAMED]))
        else:
            report.add(OK, "escalations", "every open escalation's alert was delivered or is on its way")
    finally:
        if own:
            await db.dispose()
    return report


def _current_revision(sync_conn: Any) -> str | None:
    from alembic.migration import MigrationContext

    return MigrationContext.configure(sync_conn).get_current_revision()


def _head_revision(url: str) -> str | None:
    from alembic.script import ScriptDirectory

    from storage.migrate import alembic_config

    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


async def _check_redis(settings: Any, report: Report) -> None:
    if not settings.redis_url:
        report.add(INFO, "redis", "not configured: in-process state, one process only")
        return
    import redis.asyncio as aioredis

    client = aioredis.from_url(settings.redis_url, socket_connect_timeout=5, socket_timeout=5)
    kw = client.connection_pool.connection_kwargs
    where = f"{kw.get('host', kw.get('path', '?'))}:{kw.get('port', '')}".rstrip(":")
    try:
        await asyncio.wait_for(client.ping(), 10)
        report.add(OK, "redis", f"reachable ({where})")
    except Exception as exc:  # noqa: BLE001 - reported
        report.add(NEEDS, "redis", f"{where}: cannot connect ({type(exc).__name__})")
    finally:
        await client.aclose()


def cli_doctor(args: Any) -> int:
    from bot.config import ConfigError, load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"{NEEDS:<5}  configuration: {exc}")
        return 1
    report = asyncio.run(check(settings))
    for f in report.findings:
        print(f.line())
    if report.needs_person:
        print(f"{len(report.needs_person)} finding(s) need a person.", file=sys.stderr)
    return report.exit_code


async def log_report(settings: Any, db: Any = None) -> Report | None:
    """`gridbot serve`'s start: the doctor's findings as log lines; never stops the server."""
    try:
        report = await check(settings, db=db)
    except Exception as exc:  # noqa: BLE001 - the server starts anyway
        log.warning("doctor: the checks could not run (%s)", type(exc).__name__)
        return None
    for f in report.findings:
        (log.warning if f.level == NEEDS else log.info)("doctor: %s", f.line())
    return report
