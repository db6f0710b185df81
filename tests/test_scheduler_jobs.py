"""The scheduled jobs, driven by a FakeClock: a whole 14-day quarantine, follow-ups, misses, grace.

Nothing here waits for a schedule: each job is called with the time it would have fired at.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.clock import FakeClock
from bot.config import Settings
from bot.runtime import Runtime
from scheduler.jobs import JOB_NAMES, run_job
from storage.db import Database
from storage.models import (
    Building,
    CheckIn,
    Community,
    Escalation,
    Grid,
    Household,
    JobRun,
    OutboundMessage,
    Quarantine,
    Reminder,
    Resident,
    Staff,
    StaffScope,
    Street,
)

TZ = ZoneInfo("Asia/Shanghai")
START = date(2026, 2, 10)


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=TZ)


def make_runtime(db: Database, when: datetime, **settings) -> Runtime:
    return Runtime(settings=Settings(database_url=db.url, **settings), db=db, clock=FakeClock(when))


async def seed(db: Database, *, quarantine_start: date | None = START) -> dict[str, int]:
    """One grid, one building, three households; 王芳 of 3-2-501 in home quarantine with a 1+4 team."""
    async with db.session() as s:
        street = Street(name="天桥街道")
        grid = Grid(name="阳光一网格", community=Community(name="阳光社区", street=street))
        b = Building(name="3号楼", number="3", grid=grid, chat_id="chat-3", channel="wecom")
        s.add(b)
        await s.flush()
        staff = {}
        for key, role, uid in (("worker", "网格员", "w-zhang"), ("leader", "网格长", "w-lead"),
                               ("cadre", "街道干部", "w-cadre"), ("police", "民警", "w-police"),
                               ("medic", "医护", "w-medic"), ("duty", "街道值班", "w-duty")):
            staff[key] = Staff(name=key, role=role, channel="wecom", channel_user_id=uid)
        s.add_all(staff.values())
        await s.flush()
        for key in ("worker", "leader", "medic"):
            s.add(StaffScope(staff_id=staff[key].id, grid_id=grid.id))
        for key in ("cadre", "duty"):
            s.add(StaffScope(staff_id=staff[key].id, street_id=street.id))
        hh = {room: Household(building=b, unit="2", room=room) for room in ("501", "502", "503")}
        s.add_all(hh.values())
        await s.flush()
        wang = Resident(household_id=hh["501"].id, name="王芳", channel="wecom", channel_user_id="u-wangfang",
                        category="居家隔离", cadre_id=staff["cadre"].id, police_id=staff["police"].id,
                        medic_id=staff["medic"].id)
        li = Resident(household_id=hh["502"].id, name="李明", channel="aibot", channel_user_id="u-liming")
        li2 = Resident(household_id=hh["502"].id, name="李雷", channel="aibot", channel_user_id="u-lilei")
        zhao = Resident(household_id=hh["503"].id, name="赵强", channel="bridge", channel_user_id="b-zhao")
        s.add_all([wang, li, li2, zhao])
        await s.flush()
        if quarantine_start is not None:
            s.add(Quarantine(resident_id=wang.id, start=quarantine_start, days=14))
        return {"wang": wang.id, "li": li.id, "zhao": zhao.id, "h501": hh["501"].id, "h502": hh["502"].id,
                "h503": hh["503"].id, "grid": grid.id, "building": b.id,
                **{k: v.id for k, v in staff.items()}}


async def outbox(db: Database, like: str = "%") -> list[OutboundMessage]:
    async with db.session() as s:
        return list((await s.scalars(select(OutboundMessage).where(OutboundMessage.dedup_key.like(like))
                                     .order_by(OutboundMessage.id))).all())


async def answer(db: Database, ids: dict, day: date, slot: str, when: datetime, *, via_checkin: bool) -> None:
    """What handlers/checkin does when the resident reports: a CheckIn, and (usually) answered_at."""
    async with db.session() as s:
        if via_checkin:
            s.add(CheckIn(household_id=ids["h501"], resident_id=ids["wang"], person=f"r{ids['wang']}", date=day,
                          slot=slot, status="safe", temperature=36.5, created_at=when, updated_at=when))
        else:
            rem = await s.scalar(select(Reminder).where(Reminder.resident_id == ids["wang"], Reminder.date == day,
                                                        Reminder.slot == slot))
            rem.answered_at = when


async def test_fourteen_day_quarantine_with_a_miss_and_a_restart(db):
    ids = await seed(db)
    rt = make_runtime(db, at(START, 7))
    restarted = None
    for i in range(16):
        day = START + timedelta(days=i)
        if i == 7:
            # A restart: a fresh Runtime on a fresh engine over the same database.
            restarted = Database(db.url)
            rt = make_runtime(restarted, at(day, 7))
        for hh, slot in ((8, "am"), (14, "pm")):
            due = at(day, hh)
            await run_job("quarantine-reminders", rt, due)
            await run_job("quarantine-reminders", rt, due + timedelta(seconds=30))  # the job fires twice
            if i < 14 and (i, slot) != (4, "pm"):
                await answer(db, ids, day, slot, due + timedelta(minutes=20), via_checkin=i % 2 == 0)
            for minutes in (60, 120, 125, 240, 245):
                await run_job("follow-up", rt, due + timedelta(minutes=minutes))
        await run_job("quarantine-ends", rt, at(day, 9))
        await run_job("quarantine-ends", rt, at(day, 9, 1))
    if restarted is not None:
        await restarted.dispose()

    async with db.session() as s:
        rems = (await s.scalars(select(Reminder).order_by(Reminder.date, Reminder.slot))).all()
        esc = (await s.scalars(select(Escalation))).all()
    assert len(rems) == 28
    assert all(r.sent_at is not None and not r.skipped for r in rems)
    assert [r.date for r in rems[::2]] == [START + timedelta(days=i) for i in range(14)]

    sent = [m for m in await outbox(db, "remind:%") if not m.dedup_key.endswith(":again")]
    assert len(sent) == 28
    for n, m in enumerate(sent):
        assert f"第{n // 2 + 1}天，共14天" in m.text
        assert m.channel == "wecom" and m.to_user == "u-wangfang"
    assert "第1天" in sent[0].text and "第14天" in sent[-1].text
    assert "买菜" in sent[0].text and "36.5" in sent[0].text

    # The one silent slot: repeated once at +2h, then a missed report at +4h.
    again = await outbox(db, "%:again")
    assert [m.dedup_key for m in again] == [f"remind:{ids['wang']}:{START + timedelta(days=4)}:pm:again"]
    missed = [r for r in rems if r.missed_at is not None]
    assert len(missed) == 1 and missed[0].date == START + timedelta(days=4) and missed[0].slot == "pm"
    assert missed[0].followup_at == at(START + timedelta(days=4), 16)
    assert missed[0].missed_at == at(START + timedelta(days=4), 18)
    assert len(esc) == 1 and esc[0].kind == "missed" and missed[0].escalation_id == esc[0].id
    alerts = await outbox(db, f"esc:{esc[0].id}:%")
    assert {m.to_user for m in alerts} == {"w-zhang", "w-cadre", "w-police", "w-medic"}  # worker + 1+4 team
    assert all("3-2-501" in m.text for m in alerts)
    # The answered slots were neither repeated nor escalated, whichever way the answer was recorded.
    assert all(r.answered_at is not None for r in rems if r is not missed[0])

    ends = await outbox(db, "qend:%")
    assert [(m.to_user, m.text) for m in ends] == [
        ("w-zhang", "居家隔离期满：3-2-501 王芳，第14天已结束，回复 解除 3-2-501")]
    async with db.session() as s:
        q = await s.scalar(select(Quarantine))
    assert q.end_prompted_at == at(START + timedelta(days=14), 9)


async def test_missed_slot_within_grace_is_sent_and_beyond_grace_is_skipped_and_logged(db, caplog):
    ids = await seed(db)
    rt = make_runtime(db, at(START, 7))
    caplog.set_level(logging.INFO, logger="gridbot.scheduler")
    # Down from 07:50 to 08:40: the 08:00 slot is 40 min old, inside the 1h grace.
    assert await run_job("quarantine-reminders", rt, at(START, 8, 40)) == 1
    # Down from 13:50 to 15:30: the 14:00 slot is 90 min old.
    assert await run_job("quarantine-reminders", rt, at(START, 15, 30)) == 0
    async with db.session() as s:
        rems = {r.slot: r for r in (await s.scalars(select(Reminder))).all()}
    assert rems["am"].sent_at == at(START, 8, 40) and not rems["am"].skipped
    assert rems["pm"].skipped and rems["pm"].sent_at is None
    assert [m.dedup_key for m in await outbox(db, "remind:%")] == [f"remind:{ids['wang']}:{START}:am"]
    skipped = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 1 and str(ids["wang"]) in skipped[0].getMessage() and "pm" in skipped[0].getMessage()
    assert "王芳" not in skipped[0].getMessage()  # ids only
    # A skipped slot is not followed up or reported as missed: nobody was asked.
    await answer(db, ids, START, "am", at(START, 9), via_checkin=True)
    await run_job("follow-up", rt, at(START, 22))
    assert await outbox(db, "%:again") == []
    async with db.session() as s:
        assert await s.scalar(select(func.count(Escalation.id))) == 0


async def test_reminder_slots_follow_the_configuration_and_release_stops_them(db):
    ids = await seed(db)
    rt = make_runtime(db, at(START, 7), quarantine_reminders="07:30,13:00,19:00")
    assert await run_job("quarantine-reminders", rt, at(START, 7, 30)) == 1
    assert await run_job("quarantine-reminders", rt, at(START, 13)) == 1
    async with db.session() as s:
        q = await s.scalar(select(Quarantine))
        q.released_at = at(START, 15)
    assert await run_job("quarantine-reminders", rt, at(START, 19)) == 0
    keys = [m.dedup_key for m in await outbox(db, "remind:%")]
    assert keys == [f"remind:{ids['wang']}:{START}:am", f"remind:{ids['wang']}:{START}:pm"]


async def test_quarantine_not_started_or_over_gets_no_reminder(db):
    await seed(db, quarantine_start=START + timedelta(days=1))
    rt = make_runtime(db, at(START, 7))
    assert await run_job("quarantine-reminders", rt, at(START, 8)) == 0
    assert await run_job("quarantine-reminders", rt, at(START + timedelta(days=15), 8)) == 0
    assert await run_job("quarantine-ends", rt, at(START + timedelta(days=14), 9)) == 0
    assert await run_job("quarantine-ends", rt, at(START + timedelta(days=15), 9)) == 1


async def test_daily_prompt_and_progress_go_to_the_group_without_details(db):
    ids = await seed(db)
    rt = make_runtime(db, at(START, 8))
    assert await run_job("daily-prompt", rt, at(START, 8)) == 1
    assert await run_job("daily-prompt", rt, at(START, 8, 1)) == 0  # fired twice: sent once
    async with db.session() as s:
        s.add(CheckIn(household_id=ids["h502"], date=START, status="abnormal", temperature=38.2, fever=True,
                      text="我发烧38.2", created_at=at(START, 9), updated_at=at(START, 9)))
    assert await run_job("progress", rt, at(START, 12)) == 1
    prompt, prog = await outbox(db, "prompt:%"), await outbox(db, "progress:%")
    assert prompt[0].to_chat == "chat-3" and prompt[0].to_user is None
    assert prompt[0].text == "早上好！请各户回复今日健康情况：如 3-2-501 36.5 正常。有事报情况，无事报平安。"
    assert prog[0].to_chat == "chat-3" and prog[0].text == "今日打卡进度：1/3 户"
    assert prog[0].dedup_key == f"progress:{ids['building']}:{START}"


async def test_household_nudge_once_to_one_member_after_progress_time(db):
    ids = await seed(db)
    rt = make_runtime(db, at(START, 8))
    async with db.session() as s:
        s.add(CheckIn(household_id=ids["h503"], date=START, status="safe", created_at=at(START, 9),
                      updated_at=at(START, 9)))
    assert await run_job("follow-up", rt, at(START, 11, 55)) == 0  # before the progress time
    assert await run_job("follow-up", rt, at(START, 12)) == 2
    assert await run_job("follow-up", rt, at(START, 12, 5)) == 0
    nudges = await outbox(db, "nudge:%")
    assert {(m.to_user, m.channel) for m in nudges} == {("u-wangfang", "wecom"), ("u-liming", "wecom")}
    assert any("3-2-502" in m.text for m in nudges)
    async with db.session() as s:
        assert await s.scalar(select(JobRun.id).where(JobRun.job == "nudge", JobRun.period == str(START)))


async def test_evening_ledger_to_each_grid_worker_once(db):
    ids = await seed(db)
    rt = make_runtime(db, at(START, 21))
    async with db.session() as s:
        s.add(CheckIn(household_id=ids["h501"], date=START, status="safe", created_at=at(START, 9),
                      updated_at=at(START, 9)))
    assert await run_job("ledger", rt, at(START, 21)) == 1
    assert await run_job("ledger", rt, at(START, 21, 1)) == 0
    (msg,) = await outbox(db, "ledger:%")
    assert msg.to_user == "w-zhang" and msg.dedup_key == f"ledger:{ids['worker']}:{START}"
    assert "阳光一网格" in msg.text and "3-2-502" in msg.text and "3-2-503" in msg.text


async def test_escalation_sweep_enqueues_the_next_level(db):
    await seed(db)
    rt = make_runtime(db, at(START, 14))
    await run_job("quarantine-reminders", rt, at(START, 14))
    await run_job("follow-up", rt, at(START, 18))
    assert await run_job("escalation-sweep", rt, at(START, 18, 10)) == 0
    n = await run_job("escalation-sweep", rt, at(START, 18, 16))
    assert n >= 1  # the grid leader hears it after 15 minutes
    assert await run_job("escalation-sweep", rt, at(START, 18, 17)) == 0
    assert "w-lead" in {m.to_user for m in await outbox(db, "esc:%")}


async def test_unknown_job_name_is_refused(sqlite_db):
    rt = make_runtime(sqlite_db, at(START, 8))
    with pytest.raises(KeyError, match="daily-prompt"):
        await run_job("daily-promt", rt)
    assert len(JOB_NAMES) == 8


def test_every_job_is_a_timer_some_capability_answers():
    """The scheduler's names and the handlers' @router.timer names are the same set: a job nobody
    answers would fire into the void, a timer nobody schedules would never run."""
    from handlers import build_dispatcher

    assert set(build_dispatcher().timer_names) == set(JOB_NAMES)
