"""The repeatable benchmarks: each prints its figures and a baseline measured in the same run.

They live beside the packages, not in them (they use the test helpers in tests/, which are not
installed either): run them from a source checkout with `gridbot bench NAME` or
`python -m benchmarks NAME`; `gridbot bench` alone lists the names.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module with `run(argv: list[str]) -> int`, arguments put before the caller's)
BENCHMARKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "parse": ("benchmarks.bench_parse", ()),
    "import": ("benchmarks.bench_import", ()),
    "callbacks": ("benchmarks.bench_callbacks", ()),
    "wave": ("benchmarks.bench_callbacks", ("--wave",)),
    "reminders": ("benchmarks.bench_reminders", ()),
}


def names() -> list[str]:
    return sorted(BENCHMARKS)


def main(name: str, argv: list[str]) -> int:
    if name not in BENCHMARKS:
        print(f"unknown benchmark {name!r}; choose from: {', '.join(names())}", file=sys.stderr)
        return 2
    module, first = BENCHMARKS[name]
    return int(importlib.import_module(module).run([*first, *argv]) or 0)
