"""Benchmark: parser messages per second against bare ``jieba.lcut``.

    python -m benchmarks.bench_parse [--messages N] [--rounds R]

Both run over the same messages (the labelled NLP sets, repeated to about
20,000) in the same process, in alternating rounds timed on CPU time
(``time.process_time``: the machine is shared, and wall time is noisy); the
parser must keep at least half of bare jieba's rate, as the median of the
per-round ratios.  ``gridbot bench parse`` calls :func:`run`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

_DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
_SETS = ("nlp_dev.jsonl", "nlp_extra.jsonl")
_FALLBACK = ["3-2-501 36.5 正常", "我妈今天低烧37.5，有点咳嗽", "全家都好", "36度8", "麻烦帮忙买点菜"]


def _messages(count: int) -> list[str]:
    texts: list[str] = []
    for name in _SETS:
        path = _DATA / name
        if path.exists():
            with path.open(encoding="utf-8") as f:
                texts.extend(json.loads(line)["text"] for line in f if line.strip())
    texts = texts or _FALLBACK
    reps = -(-count // len(texts))
    return (texts * reps)[:count]


def _rate(fn: Callable[[str], object], messages: Sequence[str]) -> tuple[float, float]:
    """Messages per second of CPU time (process_time) and of wall time."""
    wall = time.perf_counter()
    cpu = time.process_time()
    for text in messages:
        fn(text)
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall
    return len(messages) / max(cpu, 1e-9), len(messages) / max(wall, 1e-9)


def run(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="gridbot bench parse", description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=20_000, help="messages per round (default 20000)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of each, alternating (default 5)")
    ap.add_argument("--min-ratio", type=float, default=0.5, help="fail below this parser/jieba ratio")
    args = ap.parse_args(argv)

    import logging

    import jieba

    from nlp import parse, warm_up

    jieba.setLogLevel(logging.WARNING)
    warm_up()
    jieba.initialize()
    messages = _messages(max(1, args.messages))
    # One untimed pass each so that caches and the dictionaries are warm.
    for text in messages[:500]:
        parse(text)
        jieba.lcut(text)

    # Rounds alternate jieba and the parser, so that both see the same load on
    # a shared machine; the ratio is taken per round, on CPU time.
    parser_cpu: list[float] = []
    jieba_cpu: list[float] = []
    parser_wall: list[float] = []
    jieba_wall: list[float] = []
    for _ in range(max(1, args.rounds)):
        j_cpu, j_wall = _rate(jieba.lcut, messages)
        p_cpu, p_wall = _rate(parse, messages)
        jieba_cpu.append(j_cpu)
        parser_cpu.append(p_cpu)
        jieba_wall.append(j_wall)
        parser_wall.append(p_wall)

    ratios = [p / j for p, j in zip(parser_cpu, jieba_cpu, strict=True)]
    ratio = statistics.median(ratios)
    wall_ratio = statistics.median(p / j for p, j in zip(parser_wall, jieba_wall, strict=True))
    print(f"messages per round: {len(messages)}, rounds: {len(ratios)}")
    print(f"parser:     CPU median {statistics.median(parser_cpu):10,.0f} msg/s   best {max(parser_cpu):10,.0f} msg/s")
    print(f"jieba.lcut: CPU median {statistics.median(jieba_cpu):10,.0f} msg/s   best {max(jieba_cpu):10,.0f} msg/s")
    print(f"per round (CPU): {' '.join(f'{r:.2f}' for r in ratios)}; wall-time median ratio {wall_ratio:.2f}")
    print(f"ratio parser/jieba: median {ratio:.2f} on CPU time (required >= {args.min_ratio:.2f})")
    return 0 if ratio >= args.min_ratio else 1


if __name__ == "__main__":
    sys.exit(run())
