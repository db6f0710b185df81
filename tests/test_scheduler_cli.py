"""`gridbot jobs list [--json]` and `gridbot jobs run NAME`, against a configured SQLite database."""

from __future__ import annotations

import asyncio
import json
from argparse import Namespace
from datetime import datetime

from bot.cli import main
from scheduler.cli import cli_jobs
from storage.db import Database
from storage.models import Base
from tests.test_scheduler_jobs import outbox, seed

NAMES = ["daily-prompt", "progress", "quarantine-reminders", "follow-up", "escalation-sweep", "ledger",
         "quarantine-ends", "retention"]


def test_jobs_list_json_gives_each_job_its_next_run_in_the_configured_zone(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("GRIDBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/g.db")
    monkeypatch.setenv("GRIDBOT_LEDGER_AT", "20:15")
    assert cli_jobs(Namespace(jobs_command="list", json=True)) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == NAMES
    when = {r["name"]: datetime.fromisoformat(r["next_run"]) for r in rows}
    assert all(w.utcoffset().total_seconds() == 8 * 3600 for w in when.values())
    assert (when["ledger"].hour, when["ledger"].minute) == (20, 15)


def test_jobs_list_as_text(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("GRIDBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/g.db")
    assert main(["jobs", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == NAMES
    assert all(line.split()[1].endswith("+08:00") for line in lines)


def test_jobs_run_unknown_name_lists_the_valid_ones(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("GRIDBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/g.db")
    assert main(["jobs", "run", "reminders"]) == 2
    err = capsys.readouterr().err
    assert "reminders" in err and all(n in err for n in NAMES)


def test_jobs_run_queues_against_the_configured_database(monkeypatch, tmp_path, capsys):
    url = f"sqlite+aiosqlite:///{tmp_path}/g.db"
    monkeypatch.setenv("GRIDBOT_DATABASE_URL", url)

    async def setup() -> Database:
        db = Database(url)
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await seed(db)
        return db

    db = asyncio.run(setup())
    asyncio.run(db.dispose())
    assert main(["jobs", "run", "daily-prompt"]) == 0
    assert capsys.readouterr().out.strip() == "daily-prompt: 1 message queued"
    assert main(["jobs", "run", "daily-prompt"]) == 0
    assert capsys.readouterr().out.strip() == "daily-prompt: 0 messages queued"

    async def check() -> list:
        db = Database(url)
        try:
            return await outbox(db, "prompt:%")
        finally:
            await db.dispose()

    (row,) = asyncio.run(check())
    assert row.to_chat == "chat-3" and row.status == "pending"
