"""`gridbot bench callbacks` runs end to end (a small N): nothing refused, nothing lost."""

from __future__ import annotations

from bot.bench_callbacks import run


def test_bench_callbacks_smoke(capsys):
    assert run(["--n", "60", "--concurrency", "8", "--targets", "bare,sqlite,postgres"]) == 0
    out = capsys.readouterr().out
    assert "answered/s" in out and "sqlite" in out and "bare" in out


def test_bench_wave_not_built(capsys):
    assert run(["--wave"]) == 2
