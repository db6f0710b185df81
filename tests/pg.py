"""Throw-away PostgreSQL databases, for tests and benchmarks (neither is installed with the package).

Each caller gets a database of its own beside the admin one, so parallel runs on one server never
see each other's rows; `GRIDBOT_TEST_PG` names the admin database.
"""

from __future__ import annotations

import asyncio
import os
import uuid

PG_ADMIN_URL = os.environ.get("GRIDBOT_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def pg_url(name: str, admin_url: str = PG_ADMIN_URL) -> str:
    """The URL of database `name` on the admin database's server."""
    return admin_url.rsplit("/", 1)[0] + "/" + name


def temp_name(prefix: str = "gridbot_tmp") -> str:
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"


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
    name = temp_name(prefix)
    await pg_admin(f'CREATE DATABASE "{name}"', admin_url)
    return pg_url(name, admin_url)


async def drop_database(url: str, admin_url: str = PG_ADMIN_URL) -> None:
    name = url.rsplit("/", 1)[1]
    await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', admin_url)


def _in_thread(coro) -> object:
    """Runs a coroutine to completion in a thread of its own: the caller may be inside an event loop."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def create_temp_database_sync(prefix: str = "gridbot_tmp", admin_url: str = PG_ADMIN_URL) -> str:
    return _in_thread(create_temp_database(prefix, admin_url))


def drop_database_sync(url: str, admin_url: str = PG_ADMIN_URL) -> None:
    _in_thread(drop_database(url, admin_url))
