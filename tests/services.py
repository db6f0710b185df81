"""The real PostgreSQL and Redis servers the integration tests use: strict under CI, skipped elsewhere.

`CI` decides, by its value, not by being set: `CI=true` (or 1, yes, on) makes an unreachable server
a failure, as `./scripts/test` and CI run it; unset, empty, `false` or `0` lets those tests skip, and
the end of the run says how many were skipped and why (conftest.py's terminal summary).
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

TRUE = ("1", "true", "yes", "on")
# The start of every skip reason this module gives: the terminal summary counts them by it.
UNREACHABLE = "not reachable at"


def strict() -> bool:
    """True when a missing server must fail the run (CI=true), False when it may skip."""
    return os.environ.get("CI", "").strip().lower() in TRUE


def unreachable(service: str, where: str, exc: BaseException) -> NoReturn:
    """Raises `exc` under CI=true; otherwise skips the test with a reason naming the server."""
    if strict():
        raise exc
    pytest.skip(f"{service} {UNREACHABLE} {where}: {exc}")


def summary(skip_reasons: list[str]) -> list[str]:
    """The lines that close a run in which server tests were skipped: one per server."""
    counts: dict[str, int] = {}
    for reason in skip_reasons:
        head, sep, _ = reason.partition(f" {UNREACHABLE} ")
        if sep:
            service = head.rsplit(":", 1)[-1].strip()  # "tests/x.py:12: Skipped: Redis" -> "Redis"
            counts[service] = counts.get(service, 0) + 1
    return [f"{n} test{'s' if n != 1 else ''} skipped: {service} is not running (CI is not 'true'; "
            f"CI=true makes this a failure, ./scripts/services starts it)"
            for service, n in sorted(counts.items())]
