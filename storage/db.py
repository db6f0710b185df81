"""Engines and sessions for SQLite (the embedded default) and PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, **kwargs) -> AsyncEngine:
    if is_sqlite(url):
        # One writer at a time is SQLite's nature; wait for the lock instead of failing at once.
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    # No pool_pre_ping: it costs a round trip on every checkout (a large share of a worker's time);
    # a connection that died with the server raises, SQLAlchemy drops the pool, and the inbox and
    # outbox retry the row (tests/test_pipeline_recovery.py restarts a database under load).
    return create_async_engine(url, **kwargs)


class Database:
    """The engine and a session factory; `async with db.session() as s:` commits on success."""

    def __init__(self, url: str, **engine_kwargs):
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.url)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as s, s.begin():
            yield s

    async def dispose(self) -> None:
        await self.engine.dispose()


# --- throw-away PostgreSQL databases, for tests and benchmarks ------------------------------------

PG_ADMIN_URL = os.environ.get("GRIDBOT_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


async def pg_admin(sql: str, admin_url: str = PG_ADMIN_URL) -> None:
    """Runs one statement (CREATE/DROP DATABASE) outside a transaction on the admin database."""
    import asyncpg

    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_temp_database(prefix: str = "gridbot_tmp", admin_url: str = PG_ADMIN_URL) -> str:
    """A new empty database beside the admin one; returns its URL. Raises OSError if unreachable."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    await pg_admin(f'CREATE DATABASE "{name}"', admin_url)
    return admin_url.rsplit("/", 1)[0] + "/" + name


async def drop_database(url: str, admin_url: str = PG_ADMIN_URL) -> None:
    name = url.rsplit("/", 1)[1]
    await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', admin_url)
