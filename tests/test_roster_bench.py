"""The import benchmark runs end to end on a small size, and its synthetic roster is valid."""

from __future__ import annotations

from benchmarks import bench_import


def test_generated_roster_is_valid(tmp_path):
    households, residents = bench_import.generate(500, tmp_path)
    assert households == 500 and 1200 <= residents <= 1300
    rows, rejected = bench_import.read_and_validate(tmp_path)
    assert rows > residents and rejected == 0


def test_bench_runs_on_sqlite(capsys):
    assert bench_import.run(["--households", "600", "--db", "sqlite", "--no-xlsx"]) == 0
    out = capsys.readouterr().out
    for what in ("read+validate (csv)", "import (csv)", "re-import, no change (csv)", "ledger, all grids"):
        assert what in out
