"""Benchmark: parser messages per second against bare ``jieba.lcut``.

    python -m benchmarks.bench_parse [--messages N] [--rounds R]

Both run over the same messages (the labelled NLP sets, repeated to about
20,000) in the same process; the parser must keep at least half of bare
jieba's rate.  ``gridbot bench parse`` calls :func:`run`.
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


def _rate(fn: Callable[[str], object], messages: Sequence[str]) -> float:
    start = time.perf_counter()
    for text in messages:
        fn(text)
    return len(messages) / (time.perf_counter() - start)


def run(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="gridbot bench parse", description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=20_000, help="messages per round (default 20000)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each (default 3)")
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

    parser_rates: list[float] = []
    jieba_rates: list[float] = []
    for _ in range(max(1, args.rounds)):
        jieba_rates.append(_rate(jieba.lcut, messages))
        parser_rates.append(_rate(parse, messages))

    p_best, j_best = max(parser_rates), max(jieba_rates)
    p_med, j_med = statistics.median(parser_rates), statistics.median(jieba_rates)
    ratio = p_best / j_best
    print(f"messages per round: {len(messages)}, rounds: {len(parser_rates)}")
    print(f"parser:     best {p_best:10,.0f} msg/s   median {p_med:10,.0f} msg/s")
    print(f"jieba.lcut: best {j_best:10,.0f} msg/s   median {j_med:10,.0f} msg/s")
    print(f"ratio parser/jieba: best {ratio:.2f}, median {p_med / j_med:.2f} (required >= {args.min_ratio:.2f})")
    return 0 if ratio >= args.min_ratio else 1


if __name__ == "__main__":
    sys.exit(run())
