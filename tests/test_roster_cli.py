"""End to end, as an operator types it: gridbot init, import, import again, ledger, passwd."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest

from bot.data import EXAMPLE_ROSTER as EXAMPLE

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def gridbot(tmp_path):
    env = {**os.environ, "GRIDBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/gridbot.db",
           "GRIDBOT_CONFIG": str(tmp_path / "none.toml")}

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bot", *args], cwd=tmp_path, env=env, input=stdin,
                              capture_output=True, text=True, timeout=120)

    return run


def test_init_import_ledger(gridbot, tmp_path):
    before_init = gridbot("import", str(EXAMPLE))
    assert before_init.returncode == 2 and "gridbot init" in before_init.stderr

    assert gridbot("init").returncode == 0
    first = gridbot("import", str(EXAMPLE))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "居民" in first.stdout and "\x1b" not in first.stdout  # no progress bar when not a terminal
    second = gridbot("import", "--no-progress", str(EXAMPLE))
    assert second.returncode == 0
    assert "没有变化" in second.stdout
    for line in second.stdout.splitlines()[1:4]:
        added, updated = line.split()[1:3]
        assert (added, updated) == ("0", "0"), line

    out = gridbot("ledger", "--json", "--date", "2026-02-10")
    assert out.returncode == 0, out.stderr
    ledger = json.loads(out.stdout)
    assert ledger["date"] == "2026-02-10"
    assert [(g["grid"], g["households"], g["reported"], g["quarantined"]) for g in ledger["grids"]] == [
        ("成丰一网格", 24, 0, 2), ("成丰二网格", 18, 0, 1)]
    assert "5-12" in ledger["grids"][1]["unreported"]

    text = gridbot("ledger", "--grid", "成丰二网格", "--xlsx", str(tmp_path / "l.xlsx"))
    assert text.returncode == 0 and "成丰二网格" in text.stdout and "成丰一网格" not in text.stdout
    assert openpyxl.load_workbook(tmp_path / "l.xlsx")["汇总"]["B2"].value == "成丰二网格"
    unknown = gridbot("ledger", "--grid", "九网格")
    assert unknown.returncode == 2 and "九网格" in unknown.stderr
    assert gridbot("ledger", "--date", "2026-02-30").returncode == 2

    # The dashboard password, read from standard input because it is not a terminal.
    assert gridbot("passwd", "zhangwei", stdin="correct horse\n").returncode == 0
    assert gridbot("passwd", "nobody", stdin="correct horse\n").returncode == 1
    assert gridbot("passwd", "zhangwei", stdin="short\n").returncode == 1


def test_bad_roster_exits_1_and_names_rows(gridbot):
    assert gridbot("init").returncode == 0
    assert gridbot("import", str(ROOT / "tests/data/roster_bad/before")).returncode == 0
    bad = gridbot("import", str(ROOT / "tests/data/roster_bad"))
    assert bad.returncode == 1
    assert "居民 第3行: 未知楼栋 '9号楼'" in bad.stdout
    assert "工作人员 第4行: 未知角色" in bad.stdout
    assert "13811112222" not in bad.stdout + bad.stderr
    assert gridbot("import", "/no/such/roster.xlsx").returncode == 2
