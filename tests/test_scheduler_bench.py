"""`gridbot bench reminders` runs end to end: outbox sender → WeCom channel → HTTP → the rate-limited fake."""

from __future__ import annotations

import re

from benchmarks import bench_reminders


def _row(out: str) -> dict[str, str]:
    lines = out.splitlines()
    i = next(n for n, line in enumerate(lines) if line.split()[:2] == ["people", "backend"])
    head = re.split(r"\s{2,}", lines[i].strip())
    return dict(zip(head, re.split(r"\s{2,}", lines[i + 1].strip()), strict=True))


def test_bench_reminders_small_run_meets_45009_and_loses_nothing(capsys):
    # 20 members already had their 30 messages this minute: the fake answers 45009 to their reminders,
    # the sender retries them a (scaled) minute later. Scale 30: that minute is 2 s.
    assert bench_reminders.run(["--people", "300", "--scale", "30", "--busy", "20"]) == 0
    out = capsys.readouterr().out
    assert "300 reminders queued" in out and "the job fired again: 0 queued" in out
    assert "fake WeCom API (tests/fakewecom.py) at http://127.0.0.1:" in out and "time scale x30" in out
    row = _row(out)
    assert (row["people"], row["backend"], row["scale"]) == ("300", "sqlite", "x30")
    assert int(row["45009s"]) >= 20
    assert row["lost"] == "0" and row["doubled"] == "0"
    assert "outbox: {'sent': 300}" in out


def test_auto_scale_keeps_the_paced_run_near_a_minute():
    assert bench_reminders.auto_scale(300, 0, 2000) == 1
    assert bench_reminders.auto_scale(300, 5, 2000) == 1
    assert bench_reminders.auto_scale(10_000, 0, 2000) == 4
    assert bench_reminders.auto_scale(20_000, 0, 2000) == 9
