"""What an operator runs: gridbot doctor, staff, outbox, jobs run that says why, settings errors in
one line, log times in the bot's zone, / to the dashboard (issue 14, operators)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from bot.cli import main
from scheduler.jobs import run_job, run_job_detail
from storage.db import Database
from storage.models import Base, Reminder
from tests.test_scheduler_jobs import START, at, make_runtime, outbox, seed

ROOT = Path(__file__).resolve().parents[1]


# --- gridbot jobs run: what it did and why ----------------------------------------------------------


async def test_jobs_run_outside_a_slots_grace_says_why_and_when_next(db):
    await seed(db)
    rt = make_runtime(db, at(START, 7))
    fired = await run_job_detail("quarantine-reminders", rt, at(START + timedelta(days=1), 2))
    assert fired.messages == 0
    assert "no slot due: pm 14:00 is 12 h past its 1 h grace; next 08:00 today" in fired.notes
    assert any("recorded as skipped" in n and "--slot am --date 2026-02-10" in n for n in fired.notes)


async def test_a_missed_slot_is_sent_on_purpose_once(db):
    ids = await seed(db)
    rt = make_runtime(db, at(START, 7))
    late = at(START, 18)
    assert await run_job("quarantine-reminders", rt, late) == 0  # both slots past their grace: skipped
    async with db.session() as s:
        assert all(r.skipped for r in (await s.scalars(select(Reminder))).all())
    fired = await run_job_detail("quarantine-reminders", rt, late, options={"slot": "pm", "date": START})
    assert fired.messages == 1 and fired.notes == ["2026-02-10 pm 14:00 sent on purpose: 1 reminders"]
    assert [m.dedup_key for m in await outbox(db, "remind:%")] == [f"remind:{ids['wang']}:{START}:pm"]
    async with db.session() as s:
        pm = await s.scalar(select(Reminder).where(Reminder.slot == "pm"))
    assert not pm.skipped and pm.due_at == late  # followed up from now, not from 14:00
    again = await run_job_detail("quarantine-reminders", rt, late, options={"slot": "pm", "date": START})
    assert again.messages == 0 and "had it already" in again.notes[0]
    future = await run_job_detail("quarantine-reminders", rt, at(START, 9), options={"slot": "pm", "date": START})
    assert future.messages == 0 and "has not come yet" in future.notes[0]


def test_jobs_run_cli_prints_the_reason(monkeypatch, tmp_path, capsys):
    url = f"sqlite+aiosqlite:///{tmp_path}/g.db"
    monkeypatch.setenv("GRIDBOT_DATABASE_URL", url)

    async def setup() -> None:
        db = Database(url)
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await seed(db)
        await db.dispose()

    asyncio.run(setup())
    assert main(["jobs", "run", "quarantine-reminders", "--slot", "am", "--date", "2026-02-10"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("quarantine-reminders: 1 message queued\n") and "sent on purpose: 1 reminders" in out
    assert main(["jobs", "run", "progress", "--slot", "am"]) == 2
    assert main(["jobs", "run", "quarantine-reminders", "--slot", "am", "--date", "10.2."]) == 2
