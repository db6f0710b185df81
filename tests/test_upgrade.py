"""Upgrades keep the data: a database made by the first revision, with a community in it, upgraded
to head (SQLite and PostgreSQL). From now on the schema changes only by new Alembic revisions."""

from __future__ import annotations

import asyncio
import os
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from storage.db import Database
from storage.migrate import upgrade
from storage.models import CheckIn, Escalation, Household, Resident, Staff, Street
from tests.pg import PG_ADMIN_URL, create_temp_database_sync, drop_database_sync

FIRST = "0001_initial"
ROOT = Path(__file__).resolve().parents[1]
OPENED = datetime(2026, 2, 10, 1, 5, tzinfo=timezone.utc)

# The rows as the first revision's tables take them (its columns only).
ROWS = [
    "INSERT INTO streets (id, name) VALUES (1, '泺源街道')",
    "INSERT INTO communities (id, name, street_id) VALUES (1, '文化东路社区', 1)",
    "INSERT INTO grids (id, name, community_id) VALUES (1, '泺源一网格', 1)",
    "INSERT INTO buildings (id, name, number, grid_id, chat_id, channel) VALUES (1, '3号楼', '3', 1, 'chat-3', 'wecom')",
    "INSERT INTO households (id, building_id, unit, room) VALUES (1, 1, '2', '501')",
    "INSERT INTO residents (id, household_id, name, phone, channel, channel_user_id, category) "
    "VALUES (1, 1, '钱五', '13812345678', 'wecom', 'qianwu', '居家隔离')",
    "INSERT INTO staff (id, name, role, phone, channel, channel_user_id) "
    "VALUES (1, '张伟', '网格员', '13900001111', 'wecom', 'zhangwei')",
    "INSERT INTO checkins (id, household_id, resident_id, person, date, slot, status, temperature, fever, "
    "symptoms, text, created_at, updated_at) VALUES (1, 1, 1, 'r1', :day, 'am', 'abnormal', 38.2, :yes, "
    "'[\"咳嗽\"]', '38.2 有点咳嗽', :at, :at)",
    "INSERT INTO escalations (id, kind, household_id, resident_id, grid_id, level, status, summary, text, "
    "temperature, opened_at, deadline_at) VALUES (1, 'fever', 1, 1, 1, 0, 'open', '发热 38.2℃', "
    "'38.2 有点咳嗽', 38.2, :at, :at)",
]


def _seed(url: str) -> None:
    async def go():
        engine = create_async_engine(url)
        sqlite = url.startswith("sqlite")
        at = OPENED.replace(tzinfo=None) if sqlite else OPENED
        day = date(2026, 2, 10).isoformat() if sqlite else date(2026, 2, 10)
        try:
            async with engine.begin() as conn:
                rev = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
                assert rev == FIRST
                for sql in ROWS:
                    await conn.execute(text(sql), {"day": day, "at": at, "yes": True})
                if not sqlite:  # explicit ids: move the sequences past them, as a real database would be
                    for table in ("streets", "communities", "grids", "buildings", "households", "residents",
                                  "staff", "checkins", "escalations"):
                        await conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 1)"))
        finally:
            await engine.dispose()

    asyncio.run(go())


def _read(url: str) -> dict:
    async def go():
        db = Database(url)
        try:
            async with db.session() as s:
                hh = await s.scalar(select(Household))
                ci = await s.scalar(select(CheckIn))
                esc = await s.scalar(select(Escalation))
                staff = await s.scalar(select(Staff))
                return {
                    "street": await s.scalar(select(Street.name)),
                    "household": hh.label, "grid": hh.building.grid.name,
                    "resident": (await s.scalar(select(Resident))).name,
                    "checkin": (ci.status, ci.temperature, ci.fever, ci.symptoms, ci.text, ci.source, ci.date),
                    "escalation": (esc.code, esc.kind, esc.status, esc.text, esc.opened_at, esc.place),
                    "staff": (staff.name, staff.contacts, staff.alt_channels),
                }
        finally:
            await db.dispose()

    return asyncio.run(go())


def _check(url: str) -> None:
    upgrade(url, FIRST)
    _seed(url)
    upgrade(url)
    assert _read(url) == {
        "street": "泺源街道", "household": "3-2-501", "grid": "泺源一网格", "resident": "钱五",
        "checkin": ("abnormal", 38.2, True, ["咳嗽"], "38.2 有点咳嗽", "self", date(2026, 2, 10)),
        "escalation": ("E1", "fever", "open", "38.2 有点咳嗽", OPENED, "3-2-501"),
        "staff": ("张伟", [("wecom", "zhangwei")], []),
    }


def test_a_first_revision_database_with_data_upgrades_to_head_on_sqlite(tmp_path):
    _check(f"sqlite+aiosqlite:///{tmp_path}/old.db")


def test_a_first_revision_database_with_data_upgrades_to_head_on_postgres():
    try:
        url = create_temp_database_sync("gridbot_upgrade")
    except OSError as exc:
        if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    try:
        _check(url)
    finally:
        drop_database_sync(url)


def test_the_initial_migration_is_not_regenerated():
    assert not (ROOT / "scripts" / "regen-initial-migration").exists()
