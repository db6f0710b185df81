"""The example community (成丰社区, the packaged roster) after two weeks, for the browser tests.

History (01-27 to 02-09) is written as rows: each household's daily report, the quarantined people's
two reports a day with a missed one and a fever among them. The day itself (02-10, up to 09:55) runs
through the real pipeline and the scheduler's jobs (bot/demo.py's engine): reminders, reports, a
fever reported by a wife for her husband, a quarantined person's fever, a fever in the other grid, two
service requests, and a worker's 隔离 registered after the fact, whose period is over.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.demo import Demo
from storage.models import CheckIn, Escalation, Household, Quarantine, Reminder, Resident, Staff
from storage.staffauth import hash_password

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 2, 10)
FIRST = date(2026, 1, 27)
END = datetime(2026, 2, 10, 9, 55, tzinfo=TZ)
PASSWORD = "gridbot-demo-1"
STAFF_WITH_PASSWORDS = ("zhangwei", "wangfang", "liuyang")


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=TZ)


def _chance(*parts: object) -> int:
    return int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:4], 16) % 100


async def _history(demo: Demo) -> None:
    async with demo.db.session() as s:
        homes = (await s.scalars(select(Household))).unique().all()
        firsts = {}
        for r in (await s.scalars(select(Resident).order_by(Resident.id))).unique().all():
            firsts.setdefault(r.household_id, r)
        d = FIRST
        while d < DAY:
            for h in homes:
                if _chance("home", h.id, d) >= 88 - (d - FIRST).days:
                    continue
                r = firsts.get(h.id)
                when = at(d, 8, 5 + _chance("t", h.id, d) % 50)
                s.add(CheckIn(household_id=h.id, person="", reporter_id=r.id if r else None, date=d, status="safe",
                              temperature=36.2 + _chance("temp", h.id, d) % 7 / 10, text="平安",
                              created_at=when, updated_at=when))
            d += timedelta(days=1)
        quarantined = (await s.scalars(select(Quarantine))).unique().all()
        for q in quarantined:
            r = q.resident
            d = q.start
            while d < DAY:
                for slot, hh in (("am", 8), ("pm", 14)):
                    due = at(d, hh)
                    if _chance("q", r.id, d, slot) < 7:  # missed: the reminder went unanswered
                        s.add(Reminder(resident_id=r.id, date=d, slot=slot, due_at=due, sent_at=due,
                                       followup_at=due + timedelta(hours=2), missed_at=due + timedelta(hours=4)))
                        continue
                    fever = _chance("f", r.id, d, slot) < 4
                    temp = 37.8 if fever else 36.3 + _chance("qt", r.id, d, slot) % 6 / 10
                    when = due + timedelta(minutes=10 + _chance("m", r.id, d, slot) % 40)
                    s.add(Reminder(resident_id=r.id, date=d, slot=slot, due_at=due, sent_at=due, answered_at=when))
                    s.add(CheckIn(household_id=r.household_id, resident_id=r.id, person=f"r{r.id}", reporter_id=r.id,
                                  date=d, slot=slot, status="abnormal" if fever else "safe", temperature=temp,
                                  fever=fever, text=f"{temp:.1f}", created_at=when, updated_at=when))
                    if fever:
                        s.add(Escalation(kind="fever", household_id=r.household_id, resident_id=r.id,
                                         reporter_id=r.id, grid_id=r.household.building.grid_id, status="closed",
                                         summary=f"体温{temp:.1f}℃", text=f"{temp:.1f}", temperature=temp,
                                         opened_at=when, acked_at=when + timedelta(minutes=12),
                                         closed_at=when + timedelta(hours=1), note="医护上门复测，已退热",
                                         dedup_key=f"history:{r.id}:{d}:{slot}"))
                d += timedelta(days=1)
        hashed = hash_password(PASSWORD)
        for st in (await s.scalars(select(Staff).where(Staff.channel_user_id.in_(STAFF_WITH_PASSWORDS)))).all():
            st.password_hash = hashed


async def build(workdir: Path) -> Path:
    """Plays the scene into workdir/demo.db and returns the database file."""
    from scheduler import jobs

    demo = Demo(out=lambda _: None)
    await demo.setup(workdir)
    try:
        demo.clock.set(at(DAY, 7, 50))
        # a worker registers a quarantine after the fact: 蒋浩然 came back on 01-27; it ended on 02-09
        await demo.say(7, 50, "zhangwei", "隔离 1-2-201 蒋浩然 1-27")
        async with demo.db.session() as s:
            jiang = await s.scalar(select(Resident).where(Resident.channel_user_id == "jianghaoran"))
            q = await s.scalar(select(Quarantine).where(Quarantine.resident_id == jiang.id))
            assert q is not None and q.start == FIRST
        await _history(demo)
        for name in ("daily-prompt", "quarantine-reminders"):
            await demo.job(8, 0, name, name)
        await demo.say(8, 2, "lvfengying", f"{demo.label('lvfengying')} 36.5 正常")
        await demo.say(8, 5, "zouguilan", "全家都好")
        await demo.say(8, 7, "zhengli", "老人36.6 孩子36.9")
        await demo.say(8, 9, "jiangjunjie", "报平安，一家三口体温都正常")
        await demo.say(8, 12, "baijunjie", "36.5")
        await demo.say(8, 15, "lvli2", f"{demo.label('lvli2')} 36.6 正常")
        await demo.say(8, 18, "xuyumei", "36.5 正常")
        await demo.say(8, 21, "maxinyi", "37.9 有点咳嗽")
        await demo.say(8, 30, "yanyutong", "5号院10号 平安")
        await demo.say(8, 40, "wujianguo", "36.6")
        await demo.say(8, 33, "zhangwei", f"收到 {await demo.code('E')}")
        await demo.say(9, 10, "fengfengying", "我老伴发烧了38.5度，还咳嗽，浑身没劲")
        await demo.say(9, 35, "wujianguo", "早上开始头疼，量了一下38.2")
        await demo.say(9, 40, "huajunjie", "能帮忙买点青菜、鸡蛋和挂面吗？我们家在隔离出不去")
        await demo.say(9, 45, "lvfengying", "帮我买一盒布洛芬，谢谢")
        await demo.at(END.hour, END.minute)
        await jobs.run_job("escalation-sweep", demo.rt, demo.clock.now())
    finally:
        await demo.db.dispose()
    return workdir / "demo.db"
