"""What an operator runs: gridbot doctor, staff, outbox, jobs run that says why, settings errors in
one line, log times in the bot's zone, / to the dashboard (issue 14, operators)."""

from __future__ import annotations

import asyncio
import logging
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.cli import main
from bot.config import ConfigError, Settings, load_settings
from scheduler.jobs import run_job, run_job_detail
from storage.db import Database
from storage.models import Base, OutboundMessage, Quarantine, Reminder, Staff
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


# --- settings, port, log times, / ----------------------------------------------------------------


def test_a_bad_setting_is_one_line_naming_it_and_exit_2(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("GRIDBOT_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("GRIDBOT_FEVER_AT", "abc")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "GRIDBOT_FEVER_AT='abc'" in err and "Traceback" not in err
    for key, value in (("GRIDBOT_FEVER_AT", "73"), ("GRIDBOT_LEDGER_AT", "25:00"), ("GRIDBOT_TIMEZONE", "Mars/Base"),
                       ("GRIDBOT_TRUSTED_PROXIES", "10.0.0.0/33"), ("GRIDBOT_PORT", "70000")):
        with pytest.raises(ConfigError, match=key):
            load_settings({key: value}, toml_path=tmp_path / "none.toml")


def test_a_port_in_use_is_one_line_exit_2_before_anything_is_taken(monkeypatch, tmp_path, capsys):
    import bot.app
    import storage.migrate

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    monkeypatch.setenv("GRIDBOT_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("GRIDBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/g.db")
    called = []
    monkeypatch.setattr(storage.migrate, "upgrade", lambda *a, **k: called.append("upgrade"))
    monkeypatch.setattr(bot.app, "_serve", lambda *a, **k: called.append("serve"))
    try:
        assert main(["serve", "--port", str(port)]) == 2
    finally:
        taken.close()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"127.0.0.1:{port}" in err and "Traceback" not in err
    assert called == []  # no migration, no scheduler, no leadership


def test_the_wecom_api_base_is_accepted_with_or_without_cgi_bin():
    for base in ("https://qyapi.weixin.qq.com", "https://qyapi.weixin.qq.com/", "https://qyapi.weixin.qq.com/cgi-bin",
                 "https://qyapi.weixin.qq.com/cgi-bin/"):
        assert Settings(wecom_api_base=base).wecom_api_base == "https://qyapi.weixin.qq.com"


def test_log_times_are_in_the_bots_zone_with_the_zone_shown():
    from zoneinfo import ZoneInfo

    from bot.logs import ZonedFormatter

    fmt = ZonedFormatter("%(asctime)s %(message)s", tz=ZoneInfo("Asia/Shanghai"))
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    record.created = datetime(2026, 2, 10, 0, 0, 1, tzinfo=timezone.utc).timestamp()
    record.msecs = 0
    assert fmt.format(record).startswith("2026-02-10 08:00:01,000 +0800 hello")


async def test_the_root_redirects_to_the_dashboard(aiohttp_client, sqlite_db):
    from bot.app import build_app, build_runtime

    rt = build_runtime(Settings(database_url=sqlite_db.url), db=sqlite_db)
    client = await aiohttp_client(build_app(rt, background=False))
    resp = await client.get("/", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/dashboard/"


# --- doctor, staff, outbox, the example roster ---------------------------------------------------------


@pytest.fixture
def example_db(monkeypatch, tmp_path):
    """The example roster imported with `gridbot init` + `gridbot import --example`, no channel configured."""
    monkeypatch.setenv("GRIDBOT_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("GRIDBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/g.db")
    for key in ("GRIDBOT_WECOM_CORP_ID", "GRIDBOT_WECOM_SECRET", "GRIDBOT_WECOM_TOKEN", "GRIDBOT_WECOM_AES_KEY",
                "GRIDBOT_WECOM_AIBOT_TOKEN", "GRIDBOT_WECOM_AIBOT_AES_KEY", "GRIDBOT_BRIDGE_SECRET", "GRIDBOT_REDIS_URL"):
        monkeypatch.delenv(key, raising=False)
    assert main(["init"]) == 0
    assert main(["import", "--example", "--no-progress"]) == 0
    return f"sqlite+aiosqlite:///{tmp_path}/g.db"


def test_doctor_on_the_example_roster_without_wecom_exits_1_naming_who_cannot_be_reached(example_db, capsys):
    capsys.readouterr()
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "NEEDS  staff: 9 of 9 cannot be reached" in out
    for who in ("网格员张伟 (zhangwei", "网格员王芳 (wangfang", "街道值班周强 (zhouqiang"):
        assert who in out
    assert "NEEDS  channels: wecom is used by 9 staff and 2 buildings but not configured" in out
    assert "ok     database:" in out and "time zone: Asia/Shanghai" in out


def test_doctor_names_a_missing_schema_and_passes_when_all_is_well(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("GRIDBOT_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("GRIDBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/none.db")
    assert main(["doctor"]) == 1
    assert "run `gridbot init`" in capsys.readouterr().out
    assert not (tmp_path / "none.db").exists()  # the doctor creates nothing


def test_the_example_rosters_quarantines_are_current_after_import(example_db):
    from datetime import date

    async def starts():
        db = Database(example_db)
        try:
            async with db.session() as s:
                return sorted((await s.scalars(select(Quarantine.start))).all())
        finally:
            await db.dispose()

    today = datetime.now(Settings().tz).date()
    assert [(today - d).days for d in asyncio.run(starts())] == [9, 5, 2]
    assert date(2026, 2, 10)  # the roster's own day, kept for the demo


def test_staff_add_list_disable(example_db, capsys):
    assert main(["staff", "add", "--name", "孙强", "--role", "网格员", "--id", "sunqiang、wxid_sun",
                 "--channel", "wecom、bridge", "--grid", "成丰一网格"]) == 0
    assert "已添加工作人员" in capsys.readouterr().out
    assert main(["staff", "list"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "sunqiang" in ln)
    assert "wecom、bridge" in line and "成丰一网格" in line and "在用" in line
    assert main(["staff", "add", "--name", "孙强", "--role", "队长", "--id", "x"]) == 2
    assert main(["staff", "add", "--name", "孙强", "--role", "网格员", "--id", "x", "--grid", "没有网格"]) == 1
    assert main(["staff", "disable", "sunqiang"]) == 0
    capsys.readouterr()
    assert main(["staff", "list"]) == 0
    assert "sunqiang" not in capsys.readouterr().out
    assert main(["staff", "list", "--all"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "sunqiang" in ln)
    assert "停用" in line

    async def staff():
        db = Database(example_db)
        try:
            async with db.session() as s:
                return await s.scalar(select(Staff).where(Staff.channel_user_id == "sunqiang"))
        finally:
            await db.dispose()

    st = asyncio.run(staff())
    assert st.disabled_at is not None and st.password_hash is None and st.scopes == []
    assert main(["staff", "disable", "nobody"]) == 1


def test_outbox_shows_who_got_what_and_hides_alerts(example_db, capsys):
    async def fill():
        db = Database(example_db)
        now = datetime.now(timezone.utc)
        try:
            async with db.session() as s:
                s.add_all([
                    OutboundMessage(channel="wecom", to_user="zhangwei", kind="escalation", status="unreachable",
                                    text="【发热预警 E1】2-1-202 老伴 体温38.5℃，咳嗽", attempts=3, created_at=now,
                                    next_attempt_at=now, last_error="channel wecom not configured"),
                    OutboundMessage(channel="wecom", to_user="sunli", kind="reply", status="sent",
                                    text="已记录：1-1-102 上午平安（36.4℃）。谢谢！以后每天报平安直接回复", attempts=1,
                                    created_at=now, next_attempt_at=now, sent_at=now),
                ])
        finally:
            await db.dispose()

    asyncio.run(fill())
    capsys.readouterr()
    assert main(["outbox"]) == 0
    out = capsys.readouterr().out
    assert "38.5" not in out and "咳嗽" not in out and "36.4" not in out
    assert "unreachable" in out and "zhangwei" in out and "channel wecom not configured" in out
    assert "sunli" in out and "已记录：1-1-102" in out
    assert main(["outbox", "--failed"]) == 0
    out = capsys.readouterr().out
    assert "zhangwei" in out and "sunli" not in out
    assert main(["outbox", "--to", "sunli"]) == 0
    out = capsys.readouterr().out
    assert "sunli" in out and "zhangwei" not in out
