"""`gridbot bench callbacks` and `wave` run end to end (a small N): nothing refused, nothing lost."""

from __future__ import annotations

from benchmarks.bench_callbacks import run


def test_bench_callbacks_smoke(capsys):
    assert run(["--n", "60", "--concurrency", "8", "--targets", "bare,sqlite,postgres"]) == 0
    out = capsys.readouterr().out
    assert "answered/s" in out and "sqlite" in out and "bare" in out


def test_bench_wave_smoke(capsys):
    """The morning wave through the workers with the real handlers: every check-in handled, the one
    fever (the last household) alerted and answered; safe check-ins are quiet (GRIDBOT_CONFIRM=abnormal)."""
    assert run(["--wave", "--n", "60", "--targets", "sqlite", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    lines = [x for x in out.splitlines() if x.startswith("sqlite")]
    assert len(lines) == 2 and lines[1].split()[1] == "handlers"
    assert lines[1].split()[5] == "2"  # replies: the fever's alert and its answer
    assert lines[1].split()[6] == "0"  # failed
