"""Import errors that say why: a building's rejection reported once for its residents, a sheet that
could not be read is not followed by "其余行已导入", phone numbers checked."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from storage.roster import (
    SHEET_BUILDINGS,
    SHEET_RESIDENTS,
    SHEET_STAFF,
    Known,
    ResidentRec,
    RowError,
    StaffRec,
    import_roster,
    parse_phone,
    validate_resident,
    validate_staff,
)

ROOT = Path(__file__).resolve().parents[1]
OPTS = {"tz": ZoneInfo("Asia/Shanghai"), "quarantine_days": 14}
BUILDINGS = ["街道", "社区", "网格", "楼栋", "群ID", "渠道"]
STAFF = ["姓名", "角色", "手机", "微信ID", "渠道", "负责"]
RESIDENTS = ["楼栋", "单元", "房号", "姓名", "手机", "微信ID", "渠道", "类别", "隔离开始", "包保干部", "包保民警",
             "包保医护"]


def write(folder: Path, sheet: str, header: list[str], rows: list[list[str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{sheet}.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def roster_with_a_bad_building(folder: Path, households: int = 24) -> Path:
    write(folder, SHEET_BUILDINGS, BUILDINGS, [
        ["测试街道", "测试社区", "一网格", "1号楼", "chat-1", "wecom"],
        ["测试街道", "测试社区", "一网格", "2号楼", "chat-2", "wechat"],  # row 3: an unknown channel
    ])
    write(folder, SHEET_STAFF, STAFF, [["张伟", "网格员", "13900000001", "zhangwei", "wecom", "一网格"]])
    rows = [["1号楼", "1", "101", "王大妈", "", "", "", "常住", "", "", "", ""]]
    rows += [["2号楼", "1", str(100 + i), f"居民{i}", "", "", "", "常住", "", "", "", ""] for i in range(households)]
    rows.append(["9号楼", "1", "101", "张三", "", "", "", "常住", "", "", "", ""])
    write(folder, SHEET_RESIDENTS, RESIDENTS, rows)
    return folder


# --- a rejected building ------------------------------------------------------------------------------


async def test_a_rejected_buildings_residents_are_reported_once_with_their_count(sqlite_db, tmp_path):
    report = await import_roster(sqlite_db, roster_with_a_bad_building(tmp_path / "r"), **OPTS)
    lines = [str(e) for e in report.errors]
    assert lines[0].startswith("楼栋 第3行: 未知渠道 'wechat'（可用: wecom, aibot, bridge")
    about_2 = [ln for ln in lines if "2号楼" in ln and ln.startswith(SHEET_RESIDENTS)]
    assert about_2 == ["居民 第3-26行（共24行）: 楼栋 '2号楼' 在楼栋表第3行被拒绝（见上），这些居民未导入"], lines
    assert not any("未知楼栋 '2号楼'" in ln for ln in lines)
    assert "居民 第27行: 未知楼栋 '9号楼'" in lines  # a building nobody named is still 未知
    assert len(lines) == 3
    c = report.counts
    assert (c[SHEET_RESIDENTS].added, c[SHEET_RESIDENTS].rejected) == (1, 25)
    assert report.closing() == "共拒绝 26 行；其余行已导入。"


async def test_a_building_rejected_then_named_by_a_good_row_is_not_blamed(sqlite_db, tmp_path):
    folder = tmp_path / "r"
    write(folder, SHEET_BUILDINGS, BUILDINGS, [
        ["测试街道", "测试社区", "一网格", "1号楼", "chat-1", "qq"],
        ["测试街道", "测试社区", "一网格", "1号楼", "chat-1", "wecom"],
    ])
    write(folder, SHEET_RESIDENTS, RESIDENTS, [["1号楼", "1", "101", "王大妈", "", "", "", "常住", "", "", "", ""]])
    report = await import_roster(sqlite_db, folder, **OPTS)
    assert [(e.sheet, e.row) for e in report.errors] == [(SHEET_BUILDINGS, 2)]
    assert report.counts[SHEET_RESIDENTS].added == 1


def test_validate_resident_names_the_rejected_building_row():
    known = Known(buildings={"1号楼": "wecom"}, rejected_buildings={"2号楼": 3})
    err = validate_resident(7, {"楼栋": "2号楼", "房号": "101", "姓名": "李四"}, known)
    assert isinstance(err, RowError) and err.row == 7
    assert str(err) == "居民 第7行: 楼栋 '2号楼' 在楼栋表第3行被拒绝（见上），这些居民未导入"


# --- a sheet that cannot be read ------------------------------------------------------------------------


@pytest.fixture
def gridbot(tmp_path):
    env = {**os.environ, "GRIDBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/gridbot.db",
           "GRIDBOT_CONFIG": str(tmp_path / "none.toml")}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bot", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    assert run("init").returncode == 0
    return run


def test_a_sheet_missing_a_column_is_not_followed_by_the_rest_was_imported(gridbot):
    out = gridbot("import", str(ROOT / "tests/data/roster_bad/missing_column"))
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert "工作人员: 缺少必需的列 角色，整张表未导入" in lines
    assert "共拒绝 0 行" not in out.stdout and "其余行已导入" not in out.stdout
    assert lines[-1] == "工作人员表整张未导入；其余表的有效行已导入。"


async def test_nothing_loaded_says_so(sqlite_db, tmp_path):
    write(tmp_path / "r", SHEET_RESIDENTS, ["楼栋", "姓名"], [["1号楼", "王大妈"]])
    report = await import_roster(sqlite_db, tmp_path / "r", **OPTS)
    assert report.closing() == "居民表整张未导入；没有导入任何行。"


def test_the_cli_reports_a_rejected_building_once(gridbot, tmp_path):
    out = gridbot("import", str(roster_with_a_bad_building(tmp_path / "r")))
    assert out.returncode == 1
    assert out.stdout.count("2号楼") == 1, out.stdout  # once, not once per resident
    assert "居民 第3-26行（共24行）: 楼栋 '2号楼' 在楼栋表第3行被拒绝" in out.stdout


# --- phone numbers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "stored"), [
    ("13800138000", "13800138000"),
    ("138 0013 8000", "13800138000"),
    ("138-0013-8000", "13800138000"),
    ("+86 138 0013 8000", "13800138000"),
    ("19912345678", "19912345678"),
    ("010-12345678", "010-12345678"),
    ("0571-1234567", "0571-1234567"),
    ("0571 87654321", "0571-87654321"),
    ("01012345678", "010-12345678"),
    ("057187654321", "0571-87654321"),
])
def test_good_phone_numbers(text, stored):
    assert parse_phone(text) == stored


@pytest.mark.parametrize("text", ["1380000", "12800138000", "1380013800", "138001380001", "10086",
                                  "abc", "010-123", "13800138000a", "0571-0234567"])
def test_bad_phone_numbers(text):
    with pytest.raises(ValueError, match="不是有效的电话号码"):
        parse_phone(text)


def test_a_bad_phone_rejects_the_row_with_a_reason():
    known = Known(buildings={"1号楼": "wecom"}, grids={"一网格"})
    err = validate_resident(5, {"楼栋": "1号楼", "房号": "101", "姓名": "李四", "手机": "1380000"}, known)
    assert isinstance(err, RowError)
    assert str(err).startswith("居民 第5行: 手机 '1380000' 不是有效的电话号码（应为11位手机号")
    err = validate_staff(3, {"姓名": "张伟", "角色": "网格员", "微信ID": "zw", "手机": "139", "负责": "一网格"}, known)
    assert isinstance(err, RowError) and (err.sheet, err.row) == (SHEET_STAFF, 3) and "手机 '139'" in err.reason
    ok = validate_resident(5, {"楼栋": "1号楼", "房号": "101", "姓名": "李四", "手机": "138 0013 8000"}, known)
    assert isinstance(ok, ResidentRec) and ok.phone == "13800138000"
    ok = validate_staff(3, {"姓名": "张伟", "角色": "网格员", "微信ID": "zw", "手机": "", "负责": "一网格"}, known)
    assert isinstance(ok, StaffRec) and ok.phone is None
