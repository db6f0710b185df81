"""Shared fixtures: databases (SQLite and the real PostgreSQL), the real Redis, a driven clock.

PostgreSQL tests get a database of their own, created for this test session and dropped after it,
so that parallel runs on one server never see each other's rows. Redis tests get a key prefix of
their own for the same reason.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from sqlalchemy import text

from bot.clock import FakeClock
from bot.config import Settings
from storage.db import Database
from storage.models import Base
from tests.pg import PG_ADMIN_URL, create_temp_database_sync, drop_database_sync
from tests.services import summary, unreachable

REDIS_URL = os.environ.get("GRIDBOT_TEST_REDIS", "redis://127.0.0.1:6379/0")
TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="session")
def pg_database_url():
    """A fresh PostgreSQL database for this test session; dropped at the end."""
    try:
        url = create_temp_database_sync("gridbot_test")
    except OSError as exc:
        unreachable("PostgreSQL", PG_ADMIN_URL, exc)
    yield url
    drop_database_sync(url)


async def _reset_pg(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest_asyncio.fixture
async def sqlite_db(tmp_path):
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/gridbot.db")
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield db
    await db.dispose()


@pytest_asyncio.fixture
async def pg_db(pg_database_url):
    db = Database(pg_database_url)
    await _reset_pg(db)
    yield db
    await db.dispose()


@pytest_asyncio.fixture(params=["sqlite", "postgres"])
async def db(request, tmp_path):
    """The same test on SQLite and on the real PostgreSQL."""
    if request.param == "sqlite":
        database = Database(f"sqlite+aiosqlite:///{tmp_path}/gridbot.db")
        async with database.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
    else:
        database = Database(request.getfixturevalue("pg_database_url"))
        await _reset_pg(database)
    yield database
    await database.dispose()


@pytest_asyncio.fixture
async def redis_client():
    """The real Redis server, with a key prefix of this test's own; its keys are deleted after."""
    import redis.asyncio as aioredis
    from redis.exceptions import ConnectionError as RedisConnectionError

    client = aioredis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (OSError, RedisConnectionError) as exc:
        await client.aclose()
        unreachable("Redis", REDIS_URL, exc)
    prefix = f"gridbot-test:{uuid.uuid4().hex[:8]}:"
    client.test_prefix = prefix  # type: ignore[attr-defined]
    yield client
    keys = [k async for k in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def pytest_terminal_summary(terminalreporter):
    """Says once, at the end, how many server tests were skipped and why (never under CI=true)."""
    reasons = []
    for rep in terminalreporter.stats.get("skipped", []):
        longrepr = rep.longrepr
        reasons.append(str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr))
    for line in summary(reasons):
        terminalreporter.write_line(line, yellow=True, bold=True)


@pytest.fixture
def clock():
    return FakeClock(datetime(2026, 2, 10, 7, 0, tzinfo=TZ))


@pytest.fixture
def settings(tmp_path):
    return Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/gridbot.db")
