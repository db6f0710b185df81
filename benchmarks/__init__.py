"""`gridbot bench NAME`: the repeatable benchmarks. Each prints its figures and a baseline from the same run."""

from __future__ import annotations

import importlib
import sys

# name -> module with `run(argv: list[str]) -> int`
BENCHMARKS = {
    "parse": "benchmarks.bench_parse",
    "import": "benchmarks.bench_import",
    "callbacks": "benchmarks.bench_callbacks",
    "wave": "benchmarks.bench_callbacks",
    "reminders": "benchmarks.bench_reminders",
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
