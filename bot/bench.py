"""`gridbot bench NAME`: the repeatable benchmarks. Each prints its figures and a baseline from the same run."""

from __future__ import annotations

import importlib
import sys

# name -> module with `run(argv: list[str]) -> int`
BENCHMARKS = {
    "parse": "bot.bench_parse",
    "import": "storage.bench_import",
    "callbacks": "bot.bench_callbacks",
    "wave": "bot.bench_callbacks",
    "reminders": "scheduler.bench_reminders",
}


def cli_bench(args) -> int:
    module = BENCHMARKS.get(args.name)
    if module is None:
        print(f"unknown benchmark {args.name!r}; choose from: {', '.join(sorted(BENCHMARKS))}", file=sys.stderr)
        return 2
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            print(f"gridbot bench {args.name}: not built yet in this version", file=sys.stderr)
            return 2
        raise
    argv = list(args.args)
    if args.name == "wave":
        argv = ["--wave", *argv]
    return int(mod.run(argv) or 0)
