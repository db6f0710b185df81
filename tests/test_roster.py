"""Roster import: row validation, xlsx and CSV round trips, idempotent re-import, bad rows."""

from __future__ import annotations

import csv
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from sqlalchemy import func, select

from bot.data import EXAMPLE_ROSTER
from storage.models import (
    AuditEvent,
    Building,
    Community,
    Grid,
    Household,
    Quarantine,
    Resident,
    Staff,
    StaffScope,
    Street,
)
from storage.roster import (
    SHEET_BUILDINGS,
    SHEET_RESIDENTS,
    SHEET_STAFF,
    Known,
    ResidentRec,
    RowError,
    SchemaMissing,
    StaffRec,
    building_number,
    cell_text,
    import_roster,
    parse_date,
    validate_building,
    validate_resident,
    validate_staff,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = EXAMPLE_ROSTER
BAD = ROOT / "tests" / "data" / "roster_bad"
# What gridbot passes from its settings: the local zone, and the default quarantine length.
OPTS = {"tz": ZoneInfo("Asia/Shanghai"), "quarantine_days": 14}
TABLES = (Street, Community, Grid, Building, Household, Resident, Staff, StaffScope, Quarantine)


# --- pure pieces ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-02-10", date(2026, 2, 10)),
    ("2026/2/10", date(2026, 2, 10)),
    ("2026年2月10日", date(2026, 2, 10)),
    ("2026.2.1", date(2026, 2, 1)),
    (" 2026-2-1 ", date(2026, 2, 1)),
    (cell_text(datetime(2026, 2, 10)), date(2026, 2, 10)),  # noqa: DTZ001 - an Excel date cell is naive
])
def test_parse_date_accepts(text, expected):
    assert parse_date(text) == expected


@pytest.mark.parametrize(("text", "needle"), [
    ("2026-02-30", "不存在"), ("2026/13/1", "不存在"), ("下周一", "无法识别"), ("10/2/2026", "无法识别"),
])
def test_parse_date_rejects(text, needle):
    with pytest.raises(ValueError, match=needle):
        parse_date(text)


@pytest.mark.parametrize(("name", "number"), [
    ("3号楼", "3"), ("12栋", "12"), ("5号院", "5"), ("03号楼", "3"), ("阳光3号楼", "3"), ("综合楼", "综合楼"),
])
def test_building_number(name, number):
    assert building_number(name) == number


@pytest.mark.parametrize(("value", "text"), [
    (None, ""), (501, "501"), (13800138000.0, "13800138000"), (" 3号楼 ", "3号楼"), (2.5, "2.5"),
    (date(2026, 2, 1), "2026-02-01"),
])
def test_cell_text(value, text):
    assert cell_text(value) == text


KNOWN = Known(buildings={"1号楼": "wecom", "5号院": "bridge"}, grids={"一网格", "二网格"},
              streets={"测试街道"}, staff_uids={"zhangwei", "yangjing"})
RES = {"楼栋": "1号楼", "单元": "1", "房号": "101", "姓名": "王大妈", "手机": "13800001111",
       "微信ID": "wangdama", "渠道": "", "类别": "常住", "隔离开始": "", "包保干部": "", "包保民警": "",
       "包保医护": ""}


@pytest.mark.parametrize(("changes", "reason"), [
    ({"楼栋": "9号楼"}, "未知楼栋"),
    ({"房号": ""}, "缺少房号"),
    ({"姓名": ""}, "缺少姓名"),
    ({"类别": "常驻"}, "未知类别"),
    ({"类别": "居家隔离"}, "缺少隔离开始"),
    ({"类别": "居家隔离", "隔离开始": "2026-02-30"}, "不存在的日期"),
    ({"类别": "居家隔离", "隔离开始": "昨天"}, "无法识别的日期"),
    ({"包保医护": "nobody"}, "包保医护 'nobody'"),
    ({"渠道": "qq"}, "未知渠道"),
])
def test_resident_row_rejected(changes, reason):
    err = validate_resident(7, {**RES, **changes}, KNOWN)
    assert isinstance(err, RowError)
    assert (err.sheet, err.row) == (SHEET_RESIDENTS, 7)
    assert reason in err.reason


def test_resident_row_accepted_takes_building_channel_and_team():
    rec = validate_resident(3, {**RES, "楼栋": "5号院", "单元": "", "类别": "居家隔离",
                                "隔离开始": "2026/2/8", "包保医护": "yangjing"}, KNOWN)
    assert isinstance(rec, ResidentRec)
    assert rec.channel == "bridge" and rec.unit == "" and rec.quarantine_start == date(2026, 2, 8)
    assert (rec.cadre, rec.police, rec.medic) == (None, None, "yangjing")
    # Without a 微信ID there is no channel binding at all.
    rec = validate_resident(3, {**RES, "微信ID": ""}, KNOWN)
    assert isinstance(rec, ResidentRec) and rec.channel is None and rec.uid is None


STAFF_ROW = {"姓名": "刘洋", "角色": "街道干部", "手机": "", "微信ID": "liuyang", "渠道": "", "负责": "测试街道"}


@pytest.mark.parametrize(("changes", "reason"), [
    ({"角色": "保安"}, "未知角色"),
    ({"角色": "网格员"}, "未知网格 '测试街道'"),  # only street roles may name a street
    ({"负责": "一网格，九网格"}, "'九网格'"),
    ({"微信ID": ""}, "缺少微信ID"),
    ({"渠道": "sms"}, "未知渠道"),
])
def test_staff_row_rejected(changes, reason):
    err = validate_staff(4, {**STAFF_ROW, **changes}, KNOWN)
    assert isinstance(err, RowError) and err.sheet == SHEET_STAFF and err.row == 4
    assert reason in err.reason


def test_staff_row_scopes_split_on_any_separator():
    rec = validate_staff(2, {**STAFF_ROW, "角色": "网格长", "负责": "一网格,二网格"}, KNOWN)
    assert isinstance(rec, StaffRec) and rec.scopes == ("一网格", "二网格") and rec.channel == "wecom"
    rec = validate_staff(2, {**STAFF_ROW, "负责": "测试街道、一网格"}, KNOWN)
    assert isinstance(rec, StaffRec) and rec.scopes == ("测试街道", "一网格")


@pytest.mark.parametrize(("changes", "reason"), [
    ({"渠道": "wecom、qq"}, "未知渠道 'qq'（可用: wecom, aibot, bridge, console）"),
    ({"渠道": "wecom、wecom"}, "渠道 'wecom' 重复"),
    ({"渠道": "wecom、bridge", "微信ID": "a、b、c"}, "微信ID 有3个，渠道有2个"),
    ({"渠道": "wecom", "微信ID": "a、b"}, "微信ID 有2个，渠道有1个"),
])
def test_staff_row_with_bad_channels_is_a_clear_row_error(changes, reason):
    err = validate_staff(6, {**STAFF_ROW, **changes}, KNOWN)
    assert isinstance(err, RowError) and (err.sheet, err.row) == (SHEET_STAFF, 6)
    assert reason in err.reason
    assert str(err).startswith("工作人员 第6行: ")


def test_staff_row_with_several_channels_tried_in_order():
    rec = validate_staff(2, {**STAFF_ROW, "渠道": "wecom、bridge", "微信ID": "liuyang、wxid_ly"}, KNOWN)
    assert isinstance(rec, StaffRec)
    assert (rec.channel, rec.uid, rec.alt) == ("wecom", "liuyang", (("bridge", "wxid_ly"),))
    # one id serves every channel
    rec = validate_staff(2, {**STAFF_ROW, "渠道": "Bridge、console", "微信ID": "ly"}, KNOWN)
    assert isinstance(rec, StaffRec) and rec.contacts == [("bridge", "ly"), ("console", "ly")]
    assert rec.alt_channels == [{"channel": "console", "id": "ly"}]


def test_building_row():
    row = {"街道": "测试街道", "社区": "测试社区", "网格": "一网格", "楼栋": "12栋", "群ID": "", "渠道": ""}
    rec = validate_building(2, row)
    assert not isinstance(rec, RowError)
    assert (rec.number, rec.channel, rec.chat_id) == ("12", "wecom", None)
    err = validate_building(3, {**row, "网格": ""})
    assert isinstance(err, RowError) and "缺少网格" in err.reason


# --- against the databases --------------------------------------------------------------------------


async def _counts(db) -> dict[str, int]:
    async with db.session() as s:
        return {m.__tablename__: await s.scalar(select(func.count()).select_from(m)) for m in TABLES}


async def test_example_roster_loads_and_reimport_changes_nothing(db):
    report = await import_roster(db, EXAMPLE, **OPTS)
    assert report.ok, report.errors
    assert report.counts[SHEET_BUILDINGS].added == 4
    assert report.counts[SHEET_STAFF].added == 9
    first = await _counts(db)
    assert first["households"] == 42 and first["residents"] == report.counts[SHEET_RESIDENTS].added
    assert 85 <= first["residents"] <= 100
    assert first["quarantines"] == 3
    async with db.session() as s:
        labels = {h.label for h in (await s.scalars(select(Household))).all()}
        assert {"1-1-101", "3-2-302", "5-10", "5-15"} <= labels
        courtyard = await s.scalar(select(Building).where(Building.name == "5号院"))
        assert (courtyard.number, courtyard.channel) == ("5", "bridge")
        key = await s.scalar(select(Resident).where(Resident.category == "重点人员"))
        team = {st.channel_user_id for st in (await s.scalars(
            select(Staff).where(Staff.id.in_([key.cadre_id, key.police_id, key.medic_id])))).all()}
        assert team == {"liuyang", "chengang", "yangjing"}
        duty = await s.scalar(select(Staff).where(Staff.channel_user_id == "zhouqiang"))
        assert [(sc.grid_id, sc.street_id is not None) for sc in duty.scopes] == [(None, True)]
        leader = await s.scalar(select(Staff).where(Staff.channel_user_id == "lina"))
        assert len(leader.scopes) == 2
        audit = await s.scalar(select(AuditEvent).where(AuditEvent.action == "import"))
        assert audit.detail["counts"]["居民"]["added"] == first["residents"]

    again = await import_roster(db, EXAMPLE, **OPTS)
    assert again.ok and not again.changed
    assert again.counts[SHEET_RESIDENTS].unchanged == first["residents"]
    assert await _counts(db) == first


def _xlsx_to_csv(folder: Path, encoding: str) -> Path:
    folder.mkdir()
    wb = openpyxl.load_workbook(EXAMPLE, read_only=True)
    for ws in wb.worksheets:
        with open(folder / f"{ws.title}.csv", "w", newline="", encoding=encoding) as f:
            w = csv.writer(f)
            for row in ws.iter_rows(values_only=True):
                # Write dates the way a person would type them, not Excel's ISO form.
                w.writerow([f"{v.year}年{v.month}月{v.day}日" if isinstance(v, datetime) else cell_text(v)
                            for v in row])
    return folder


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
async def test_csv_folder_matches_xlsx(sqlite_db, tmp_path, encoding):
    folder = _xlsx_to_csv(tmp_path / "roster", encoding)
    report = await import_roster(sqlite_db, folder, **OPTS)
    assert report.ok, report.errors
    assert report.counts[SHEET_RESIDENTS].added >= 85
    # The same roster as Excel is, row for row, the same data: nothing to change.
    again = await import_roster(sqlite_db, EXAMPLE, **OPTS)
    assert again.ok and not again.changed, again.counts


def _write_csv(folder: Path, sheet: str, rows: list[list[str]]) -> None:
    folder.mkdir(exist_ok=True)
    with open(folder / f"{sheet}.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)


async def test_reimport_updates_in_place(db, tmp_path):
    await import_roster(db, EXAMPLE, **OPTS)
    before = await _counts(db)
    async with db.session() as s:
        q = await s.scalar(select(Quarantine).order_by(Quarantine.id))
        r = await s.get(Resident, q.resident_id)
        h = r.household
        target = (r.name, h.building.name, h.unit, h.room, r.channel_user_id)
        other = await s.scalar(select(Resident).where(Resident.channel_user_id.is_not(None),
                                                      Resident.id != r.id).order_by(Resident.id))
        other_key = (other.name, other.household.building.name, other.household.unit, other.household.room,
                     other.channel_user_id, other.channel)
    name, bname, unit, room, uid = target
    folder = tmp_path / "update"
    _write_csv(folder, "居民", [
        ["楼栋", "单元", "房号", "姓名", "手机", "微信ID", "渠道", "类别", "隔离开始"],
        # quarantine start moves; the resident's 微信ID moves to a new one
        [bname, unit, room, name, "", uid + "-new", "", "居家隔离", "2026-02-03"],
        # another resident takes over the old id: allowed, because it moves in the same file
        [other_key[1], other_key[2], other_key[3], other_key[0], "", uid, "", "常住", ""],
    ])
    _write_csv(folder, "工作人员", [
        ["姓名", "角色", "手机", "微信ID", "渠道", "负责"],
        ["李娜", "网格长", "", "lina", "wecom", "成丰一网格"],
    ])
    report = await import_roster(db, folder, **OPTS)
    assert report.ok, report.errors
    assert report.counts[SHEET_RESIDENTS].updated == 2
    assert report.counts[SHEET_STAFF].updated == 1
    after = await _counts(db)
    assert after["residents"] == before["residents"] and after["quarantines"] == before["quarantines"]
    assert after["staff_scopes"] == before["staff_scopes"] - 1
    async with db.session() as s:
        moved = await s.scalar(select(Resident).where(Resident.channel_user_id == uid + "-new"))
        assert moved.name == name and moved.phone  # an empty phone cell keeps the stored number
        q = await s.scalar(select(Quarantine).where(Quarantine.resident_id == moved.id))
        assert q.start == date(2026, 2, 3)
        taker = await s.scalar(select(Resident).where(Resident.channel_user_id == uid))
        assert taker.name == other_key[0]


async def test_bad_roster_names_every_bad_row_and_loads_the_rest(db):
    first = await import_roster(db, BAD / "before", **OPTS)
    assert first.ok, first.errors
    report = await import_roster(db, BAD, **OPTS)
    got = {(e.sheet, e.row): e.reason for e in report.errors}
    expected = {
        (SHEET_BUILDINGS, 4): "群ID 'chat-2'",
        (SHEET_BUILDINGS, 5): "未知渠道",
        (SHEET_STAFF, 4): "未知角色",
        (SHEET_STAFF, 5): "与第2行重复",
        (SHEET_STAFF, 6): "未知网格 '九网格'",
        (SHEET_RESIDENTS, 3): "未知楼栋 '9号楼'",
        (SHEET_RESIDENTS, 4): "缺少房号",
        (SHEET_RESIDENTS, 5): "不存在的日期",
        (SHEET_RESIDENTS, 6): "无法识别的日期",
        (SHEET_RESIDENTS, 7): "未知类别",
        (SHEET_RESIDENTS, 9): "与第8行重复",
        (SHEET_RESIDENTS, 10): "已绑定到另一位居民",
        (SHEET_RESIDENTS, 11): "包保干部 'nobody'",
        (SHEET_RESIDENTS, 12): "缺少隔离开始",
        (SHEET_RESIDENTS, 14): "楼栋 '3号楼' 在楼栋表第4行被拒绝",  # its building row was rejected
    }
    assert set(got) == set(expected), sorted(got.items())
    for key, needle in expected.items():
        assert needle in got[key], (key, got[key])
    assert all("13811112222" not in str(e) for e in report.errors)
    c = report.counts
    assert (c[SHEET_BUILDINGS].added, c[SHEET_BUILDINGS].unchanged, c[SHEET_BUILDINGS].rejected) == (2, 1, 2)
    assert (c[SHEET_STAFF].added, c[SHEET_STAFF].unchanged, c[SHEET_STAFF].rejected) == (2, 1, 3)
    assert (c[SHEET_RESIDENTS].added, c[SHEET_RESIDENTS].unchanged, c[SHEET_RESIDENTS].rejected) == (3, 1, 10)
    async with db.session() as s:
        names = set((await s.scalars(select(Resident.name))).all())
        assert names == {"王大妈", "李大爷", "孙八", "陈三", "褚四"}
        chen = await s.scalar(select(Resident).where(Resident.name == "陈三"))
        assert chen.household.label == "5-12" and chen.phone == "13812345678"
        assert (await s.scalar(select(Quarantine))).start == date(2026, 2, 8)
        duty = await s.scalar(select(Staff).where(Staff.channel_user_id == "zhouba"))
        assert duty.scopes[0].street_id is not None


async def test_missing_required_column_rejects_the_sheet_once(sqlite_db):
    report = await import_roster(sqlite_db, BAD / "missing_column", **OPTS)
    assert [(e.sheet, e.row) for e in report.errors] == [(SHEET_STAFF, 0)]
    assert "角色" in report.errors[0].reason
    assert report.counts[SHEET_BUILDINGS].added == 1
    assert "第" not in str(report.errors[0])  # the sheet, not a row
    counts = await _counts(sqlite_db)
    assert counts["staff"] == 0 and counts["buildings"] == 1


async def test_import_refuses_a_database_without_tables(tmp_path):
    from storage.db import Database

    empty = Database(f"sqlite+aiosqlite:///{tmp_path}/empty.db")
    try:
        with pytest.raises(SchemaMissing, match="gridbot init"):
            await import_roster(empty, EXAMPLE, **OPTS)
    finally:
        await empty.dispose()


async def test_progress_bar_goes_to_stderr(sqlite_db, capsys):
    report = await import_roster(sqlite_db, EXAMPLE, **OPTS, progress=True)
    assert report.ok
    out = capsys.readouterr()
    assert out.out == ""


async def test_import_staff_with_several_channels(db, tmp_path):
    folder = tmp_path / "multi"
    _write_csv(folder, "楼栋", [["街道", "社区", "网格", "楼栋", "群ID", "渠道"],
                               ["测试街道", "测试社区", "一网格", "1号楼", "wxgroup-1", "bridge"]])
    _write_csv(folder, "工作人员", [
        ["姓名", "角色", "手机", "微信ID", "渠道", "负责"],
        ["张伟", "网格员", "13800000001", "zhangwei、wxid_zw", "wecom、bridge", "一网格"],
        ["杨静", "医护", "", "wxid_yj", "bridge、console", "一网格"],
        ["王五", "网格长", "", "wangwu", "wecom、sms", "一网格"],  # an unknown channel: this row only
    ])
    _write_csv(folder, "居民", [
        ["楼栋", "单元", "房号", "姓名", "手机", "微信ID", "渠道", "类别", "隔离开始", "包保医护"],
        # the team may name a staff member by the id of any of their channels
        ["1号楼", "1", "101", "王大妈", "", "wxid_wdm", "", "重点人员", "", "wxid_zw"],
    ])
    report = await import_roster(db, folder, **OPTS)
    assert [str(e) for e in report.errors] == [
        "工作人员 第4行: 未知渠道 'sms'（可用: wecom, aibot, bridge, console）"]
    assert report.counts[SHEET_STAFF].added == 2 and report.counts[SHEET_RESIDENTS].added == 1
    async with db.session() as s:
        zw = await s.scalar(select(Staff).where(Staff.name == "张伟"))
        yj = await s.scalar(select(Staff).where(Staff.name == "杨静"))
        assert zw.contacts == [("wecom", "zhangwei"), ("bridge", "wxid_zw")]
        assert zw.alt_channels == [{"channel": "bridge", "id": "wxid_zw"}]
        assert yj.contacts == [("bridge", "wxid_yj"), ("console", "wxid_yj")]
        resident = await s.scalar(select(Resident).where(Resident.name == "王大妈"))
        assert resident.medic_id == zw.id

    # again: nothing changes; then 渠道 reordered: the same person, updated in place
    again = await import_roster(db, folder, **OPTS)
    assert again.counts[SHEET_STAFF].unchanged == 2 and again.counts[SHEET_STAFF].updated == 0
    _write_csv(folder, "工作人员", [
        ["姓名", "角色", "手机", "微信ID", "渠道", "负责"],
        ["张伟", "网格员", "", "wxid_zw、zhangwei", "bridge、wecom", "一网格"],
    ])
    moved = await import_roster(db, folder, **OPTS)
    assert moved.ok, moved.errors
    assert moved.counts[SHEET_STAFF].updated == 1 and moved.counts[SHEET_STAFF].added == 0
    async with db.session() as s:
        [zw] = (await s.scalars(select(Staff).where(Staff.name == "张伟"))).all()
        assert zw.contacts == [("bridge", "wxid_zw"), ("wecom", "zhangwei")]
        assert zw.phone == "13800000001"


async def test_a_channel_id_of_two_staff_rows_is_refused(sqlite_db, tmp_path):
    folder = tmp_path / "dup"
    _write_csv(folder, "楼栋", [["街道", "社区", "网格", "楼栋", "群ID", "渠道"],
                               ["测试街道", "测试社区", "一网格", "1号楼", "", ""]])
    _write_csv(folder, "工作人员", [
        ["姓名", "角色", "手机", "微信ID", "渠道", "负责"],
        ["张伟", "网格员", "", "zhangwei、wxid_zw", "wecom、bridge", "一网格"],
        ["李四", "网格员", "", "wxid_zw", "bridge", "一网格"],
    ])
    report = await import_roster(sqlite_db, folder, **OPTS)
    assert [str(e) for e in report.errors] == ["工作人员 第3行: 渠道 bridge 的微信ID 'wxid_zw' 与第2行重复"]
