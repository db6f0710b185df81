"""Alembic: `upgrade head` builds the models' schema on SQLite and PostgreSQL, and repeating it is a no-op."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from storage.migrate import alembic_config, upgrade
from storage.models import Base
from tests.pg import PG_ADMIN_URL, create_temp_database_sync, drop_database_sync
from tests.services import unreachable


def _diffs_and_state(url: str) -> tuple[list, str | None, list[str]]:
    """Schema differences from the models, the stamped revision, and the marker rows."""

    def inspect(conn):
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, Base.metadata), ctx.get_current_revision()

    async def go():
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                diffs, rev = await conn.run_sync(inspect)
                names = (await conn.execute(text("SELECT name FROM streets ORDER BY id"))).scalars().all()
            return diffs, rev, list(names)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _mark(url: str) -> None:
    async def go():
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO streets (name) VALUES ('迁移标记街道')"))
        finally:
            await engine.dispose()

    asyncio.run(go())


def _check(url: str) -> None:
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    upgrade(url)
    diffs, rev, _ = _diffs_and_state(url)
    assert diffs == [], diffs
    assert rev == head
    _mark(url)
    upgrade(url)  # again: nothing to do, nothing lost
    diffs, rev, names = _diffs_and_state(url)
    assert (diffs, rev, names) == ([], head, ["迁移标记街道"])


def test_upgrade_head_on_sqlite(tmp_path):
    _check(f"sqlite+aiosqlite:///{tmp_path}/migrated.db")


def test_upgrade_head_on_postgres():
    # A database of its own: the `db` fixture builds its schema with create_all, which would hide
    # a migration that forgot a table.
    try:
        url = create_temp_database_sync("gridbot_migrate")
    except OSError as exc:
        unreachable("PostgreSQL", PG_ADMIN_URL, exc)
    try:
        _check(url)
    finally:
        drop_database_sync(url)
