"""The ledger (台账): counts on both databases, the worker's text, the Excel export."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from sqlalchemy import select

from bot.config import Settings
from storage.ledger import UnknownGrid, compute_ledger, format_grid_ledger, write_ledger_xlsx
from storage.models import (
    Building,
    CheckIn,
    Escalation,
    Grid,
    Household,
    Quarantine,
    Resident,
    ServiceRequest,
)
from storage.roster import import_roster
from tests.test_roster import EXAMPLE, OPTS

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 2, 10)
SETTINGS = Settings()
G1, G2 = "成丰一网格", "成丰二网格"


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=TZ)


async def _households(s, grid: str) -> list[Household]:
    rows = await s.scalars(select(Household).join(Building).join(Grid).where(Grid.name == grid)
                           .order_by(Household.id))
    return list(rows.all())


async def _seed(db) -> dict:
    """The example roster plus one day's worth of facts in grid 1; returns the ids used."""
    report = await import_roster(db, EXAMPLE, **OPTS)
    assert report.ok
    async with db.session() as s:
        hs = await _households(s, G1)
        a, b, c, d = hs[0], hs[1], hs[2], hs[3]
        grid1 = await s.scalar(select(Grid.id).where(Grid.name == G1))
        when = at(DAY, 9)

        def checkin(h, person, status, fever=False, slot="day", day=DAY):
            return CheckIn(household_id=h.id, person=person, date=day, slot=slot, status=status, fever=fever,
                           temperature=37.8 if fever else 36.5, created_at=when, updated_at=when)

        s.add_all([
            checkin(a, "", "safe"), checkin(a, "r1", "safe"),
            checkin(b, "", "safe"), checkin(b, "老人", "abnormal", fever=True),
            # one person with fever in both quarantine slots is one person with fever
            checkin(c, "r7", "abnormal", fever=True, slot="am"), checkin(c, "r7", "abnormal", fever=True, slot="pm"),
            checkin(c, "r8", "abnormal", fever=True),
            checkin(d, "", "safe", day=DAY - timedelta(days=1)),  # yesterday does not count today
        ])
        # Quarantines beyond the example's two in grid 1 (started 02-01 and 02-05, both active):
        residents = (await s.scalars(select(Resident).where(Resident.household_id.in_([a.id, b.id, c.id, d.id]))
                                     .order_by(Resident.id))).all()
        s.add_all([
            Quarantine(resident_id=residents[0].id, start=date(2026, 2, 1), days=14,
                       released_at=at(date(2026, 2, 9), 18)),  # released the day before: not counted
            Quarantine(resident_id=residents[1].id, start=date(2026, 2, 3), days=14,
                       released_at=at(DAY, 10)),  # released during the day: still counted
            Quarantine(resident_id=residents[2].id, start=date(2026, 2, 11), days=14),  # not begun
            Quarantine(resident_id=residents[3].id, start=date(2026, 1, 20), days=14),  # ended 02-02
        ])

        def esc(kind, status, opened):
            return Escalation(kind=kind, household_id=a.id, grid_id=grid1, status=status, opened_at=opened,
                              deadline_at=opened + timedelta(minutes=15))

        s.add_all([
            esc("missed", "open", at(DAY, 0, 30)),  # 00:30 local is 16:30 UTC the day before
            esc("missed", "closed", at(DAY - timedelta(days=1), 23, 30)),
            esc("fever", "acked", at(DAY, 9)),
        ])
        # "cancelled" does not fit ServiceRequest.status (String(8)) on PostgreSQL; see the report.
        for status in ("open", "taken", "done", "done"):
            s.add(ServiceRequest(category="groceries", household_id=b.id, grid_id=grid1, status=status,
                                 created_at=when))
        labels = {"a": a.label, "b": b.label, "c": c.label, "d": d.label}
    return labels


async def test_ledger_counts(db):
    labels = await _seed(db)
    async with db.session() as s:
        ledger = await compute_ledger(s, DAY, SETTINGS.tz)
    assert ledger["date"] == "2026-02-10"
    g1, g2 = ledger["grids"]
    assert g1["grid"] == G1 and g2["grid"] == G2
    assert set(g1) == {"grid", "households", "reported", "safe", "abnormal", "unreported", "fevers",
                       "quarantined", "missed_reports", "open_escalations", "open_requests"}
    assert (g1["households"], g1["reported"], g1["safe"], g1["abnormal"]) == (24, 3, 1, 2)
    assert len(g1["unreported"]) == 21
    assert labels["d"] in g1["unreported"] and labels["a"] not in g1["unreported"]
    assert g1["fevers"] == 3
    assert g1["quarantined"] == 3  # the example's two, plus the one released during the day
    assert (g1["missed_reports"], g1["open_escalations"], g1["open_requests"]) == (1, 2, 2)
    assert (g2["households"], g2["reported"], g2["fevers"], g2["quarantined"]) == (18, 0, 0, 1)
    assert g2["unreported"][:2] == ["3-1-101", "3-1-102"] and g2["unreported"][-1] == "5-15"


async def test_ledger_on_other_days(db):
    await _seed(db)
    async with db.session() as s:
        day14 = await compute_ledger(s, date(2026, 2, 14), SETTINGS.tz, [G1])
        day15 = await compute_ledger(s, date(2026, 2, 15), SETTINGS.tz, [G1])
        day9 = await compute_ledger(s, DAY - timedelta(days=1), SETTINGS.tz, [G1])
    # 02-14: 02-01 (its 14th and last day), 02-05, 02-11; the one released on 02-10 is gone.
    assert day14["grids"][0]["quarantined"] == 3
    assert day15["grids"][0]["quarantined"] == 2
    g = day9["grids"][0]
    # 02-09: both of the example's, the one released that evening, and the one released on 02-10.
    assert g["quarantined"] == 4
    assert (g["reported"], g["safe"], g["fevers"], g["missed_reports"]) == (1, 1, 0, 1)


async def test_ledger_for_one_grid_and_unknown_grid(db):
    await _seed(db)
    async with db.session() as s:
        one = await compute_ledger(s, DAY, SETTINGS.tz, [G2])
        assert [g["grid"] for g in one["grids"]] == [G2]
        with pytest.raises(UnknownGrid, match="没有这个网格"):
            await compute_ledger(s, DAY, SETTINGS.tz, ["不存在网格"])


def _g(**kw) -> dict:
    base = {"grid": G1, "households": 48, "reported": 41, "safe": 39, "abnormal": 2,
            "unreported": ["3-2-502", "3-2-601"], "fevers": 1, "quarantined": 3, "missed_reports": 1,
            "open_escalations": 2, "open_requests": 4}
    return {**base, **kw}


def test_format_grid_ledger():
    text = format_grid_ledger(_g(), DAY)
    assert text.startswith("成丰一网格 2月10日台账")
    for part in ("户数 48", "已报 41（85%）", "平安 39", "异常 2", "未报 2 户：3-2-502、3-2-601", "发热 1 人",
                 "隔离中 3 人", "漏报 1 次", "未结预警 2 件", "未完成服务 4 件"):
        assert part in text, part
    many = [f"1-1-{i}" for i in range(101, 141)]
    text = format_grid_ledger(_g(unreported=many, households=0, reported=0), DAY)
    assert "等40户" in text and "1-1-130" in text and "1-1-131" not in text
    assert "%" not in text  # no rate for a grid with no households
    assert "全部已报" in format_grid_ledger(_g(unreported=[]), DAY)


async def test_ledger_workbook(db, tmp_path):
    """The 台账 workbook: per household and day (worst status, latest reading, who, when), abnormal
    cases, escalations with their timeline and note, requests, each quarantine day's two readings,
    the per-grid summary; the same builder as the web page's export."""
    from bot.ledger_cmd import book_rules
    from storage.ledger import ledger_book
    from storage.models import OutboundMessage, Staff

    labels = await _seed(db)
    async with db.session() as s:
        hs = await _households(s, G1)
        e = hs[4]
        zhang = await s.scalar(select(Staff).where(Staff.channel_user_id == "zhangwei"))
        # a fever in the morning, "36.5 正常" in the afternoon: two rows, the day is a fever
        s.add_all([CheckIn(household_id=e.id, date=DAY, status="abnormal", fever=True, temperature=38.0,
                           symptoms=["fever", "cough"], text="发烧38度 咳嗽", created_at=at(DAY, 9, 5),
                           updated_at=at(DAY, 9, 5)),
                   CheckIn(household_id=e.id, date=DAY, status="safe", temperature=36.5, text="36.5 正常",
                           source="staff", staff_id=zhang.id, created_at=at(DAY, 15), updated_at=at(DAY, 15))])
        esc = Escalation(kind="fever", household_id=e.id, grid_id=hs[0].building.grid_id, status="closed",
                         level=1, summary="发热 38.0℃", text="发烧38度 咳嗽", temperature=38.0,
                         opened_at=at(DAY, 9, 5), acked_by=zhang.id, acked_at=at(DAY, 9, 30),
                         closed_by=zhang.id, closed_at=at(DAY, 11), note="已陪同去发热门诊")
        s.add(esc)
        await s.flush()
        for key, when in ((f"esc:{esc.id}:L0:s{zhang.id}", at(DAY, 9, 5)), (f"esc:{esc.id}:L1:s9", at(DAY, 9, 20))):
            s.add(OutboundMessage(channel="wecom", to_user="x", text="t", kind="escalation", dedup_key=key,
                                  escalation_id=esc.id, status="sent", created_at=when, next_attempt_at=when))
        q = (await s.scalars(select(Quarantine).order_by(Quarantine.start))).all()
        ma = next(x for x in q if x.start == date(2026, 2, 1) and x.released_at is None)
        ma_name = ma.resident.name
        s.add(CheckIn(household_id=ma.resident.household_id, resident_id=ma.resident_id, person=f"r{ma.resident_id}",
                      date=DAY, slot="am", status="safe", temperature=36.4, created_at=at(DAY, 8, 10),
                      updated_at=at(DAY, 8, 10)))
    async with db.session() as s:
        book = await ledger_book(s, DAY - timedelta(days=1), DAY, at(DAY, 20), book_rules(SETTINGS), grid_names=[G1])
    path = tmp_path / "book.xlsx"
    write_ledger_xlsx(book, path)
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["汇总", "住户台账", "异常情况", "预警", "服务请求", "隔离人员", "未报户"]

    summary = list(wb["汇总"].iter_rows(values_only=True))
    assert summary[0][:6] == ("日期", "网格", "社区", "户数", "已报", "报告率")
    reported = {r[0]: r[4] for r in summary[1:]}
    assert [r[:4] for r in summary[1:]] == [("2026-02-09", G1, "成丰社区", 24), ("2026-02-10", G1, "成丰社区", 24)]
    assert reported["2026-02-09"] == 1 and reported["2026-02-10"] in (4, 5)

    rows = list(wb["住户台账"].iter_rows(values_only=True))
    assert rows[0] == ("日期", "网格", "楼栋", "单元", "房号", "户主", "电话", "人数", "状态", "体温", "症状", "报告人",
                       "报告时间", "报告次数")
    assert len(rows) == 1 + 2 * 24
    today = {(r[2], r[3], r[4]): r for r in rows[1:] if r[0] == "2026-02-10"}
    fever = today[(e.building.name, e.unit, e.room)]
    assert fever[8:] == ("发热", "38.0 → 36.5", "咳嗽", "张伟", "2026-02-10 15:00", 2)
    assert fever[5] and fever[6] and fever[7] >= 1
    assert sum(1 for r in today.values() if r[8] == "未报") == 24 - reported["2026-02-10"]
    a = next(r for r in rows[1:] if r[0] == "2026-02-10" and f"{r[2][0]}-{r[3]}-{r[4]}" == labels["a"])
    assert a[8] == "平安"

    abnormal = list(wb["异常情况"].iter_rows(min_row=2, values_only=True))
    assert any(r[3] == e.label and r[5] == "38.0" and r[7] == "咳嗽" for r in abnormal)

    escs = {r[0]: r for r in wb["预警"].iter_rows(min_row=2, values_only=True)}
    row = escs[esc.code]
    assert row[1:4] == ("发热预警", G1, e.label) and row[9] == "已办结" and row[15] == "已陪同去发热门诊"
    assert row[16].splitlines() == ["02-10 09:05 发起，通知网格员", "02-10 09:20 上报至网格长/医护",
                                    "02-10 09:30 张伟 确认", "02-10 11:00 张伟 办结：已陪同去发热门诊"]

    reqs = list(wb["服务请求"].iter_rows(min_row=2, values_only=True))
    assert len(reqs) == 4 and {r[6] for r in reqs} == {"待接单", "已接单", "已完成"}

    qs = list(wb["隔离人员"].iter_rows(values_only=True))
    assert qs[0][9:13] == ("第1天上午", "第1天下午", "第2天上午", "第2天下午")
    ma_row = next(r for r in qs[1:] if r[4] == "2026-02-01" and r[2] == ma_name)
    released = next(r for r in qs[1:] if r[4] == "2026-02-01" and r[2] != ma_name)
    # released at 18:00 on 02-09: its afternoon was still due, the next morning is not
    assert released[7] == "已解除" and released[9 + 2 * 8 + 1] == "未报" and released[9 + 2 * 9] == "—"
    assert ma_row[7] == "隔离中" and ma_row[5] == 14
    day10 = 9 + 2 * 9  # day 10 (02-10), morning
    assert ma_row[day10] == "36.4" and ma_row[day10 + 1] == "未报"
    assert ma_row[9 + 2 * 13] in ("", None)  # 02-14 is still to come
    unrep = list(wb["未报户"].iter_rows(min_row=2, values_only=True))
    assert (("2026-02-10", G1, labels["d"]) in unrep) and len(unrep) == 48 - 1 - reported["2026-02-10"]


