"""Smoke test of the parser benchmark (the ratio itself is checked by running it)."""

from __future__ import annotations

from benchmarks import bench_parse


def test_bench_runs(capsys) -> None:
    assert bench_parse.run(["--messages", "300", "--rounds", "1", "--min-ratio", "0"]) == 0
    out = capsys.readouterr().out
    assert "parser:" in out and "jieba.lcut:" in out and "ratio" in out
