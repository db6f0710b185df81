"""Logging that never shows a phone number or a health detail in clear, and never floods.

Handlers log ids and codes (household 12, E23), not the resident's words. As a second line of
defence, a filter masks anything shaped like a mainland mobile number or a body temperature, in
the message and in a traceback (whose exception lines also lose their quoted values: a
`ValueError: invalid literal ... '<the resident's words>'`).

Repeated warnings and errors of one kind (same logger, level and message template, same exception
type) are written once a minute, with the count of those held back: a failure that repeats a
thousand times a second ("Too many open files") costs a line a minute, not the disk.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from storage.privacy import redact

__all__ = ["RateLimitFilter", "RedactingFilter", "redact", "setup_logging"]

_QUOTED = re.compile(r"""(['"])(?:(?!\1).){12,}?\1""")


def _redact_traceback(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith("Traceback"):
            line = _QUOTED.sub(r"\1…\1", line)  # "ValueError: ... 'what was sent'"
        lines.append(line)
    return redact("\n".join(lines))


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = _redact_traceback(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class RateLimitFilter(logging.Filter):
    """At most one record a `period_s` per kind of warning or error; the next one written says how
    many were held back."""

    def __init__(self, period_s: float = 60.0, time_fn: Callable[[], float] = time.monotonic):
        super().__init__()
        self.period_s = period_s
        self._now = time_fn
        self._kinds: dict[tuple, list] = {}  # kind -> [written at, held back]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        exc = record.exc_info[1] if record.exc_info else None
        kind = (record.name, record.levelno, str(record.msg).split("\n", 1)[0][:200],
                type(exc).__name__ if exc is not None else None,
                getattr(exc, "errno", None))
        now = self._now()
        seen = self._kinds.get(kind)
        if seen is not None and now - seen[0] < self.period_s:
            seen[1] += 1
            return False
        held = seen[1] if seen is not None else 0
        self._kinds[kind] = [now, 0]
        if len(self._kinds) > 10_000:  # kinds that stopped: forget the oldest
            for k in sorted(self._kinds, key=lambda k: self._kinds[k][0])[:5_000]:
                del self._kinds[k]
        if held:
            record.msg = f"{record.getMessage()} [{held} more like this in the last {self.period_s:.0f} s]"
            record.args = None
        return True


class ZonedFormatter(logging.Formatter):
    """Times in the bot's own zone (GRIDBOT_TIMEZONE), with the offset shown, whatever the machine's
    zone: "2026-02-10 08:00:01,234 +0800", the same clock as the reminders and the ledger."""

    def __init__(self, fmt: str, tz: Any = None):
        super().__init__(fmt)
        self.tz = tz

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        when = datetime.fromtimestamp(record.created, self.tz or timezone.utc)
        return f"{when:%Y-%m-%d %H:%M:%S},{int(record.msecs):03d} {when:%z}"


def log_zone() -> Any:
    """The configured zone; Asia/Shanghai (the default) when the configuration cannot be read."""
    from zoneinfo import ZoneInfo

    try:
        from bot.config import load_settings

        return load_settings().tz
    except Exception:  # noqa: BLE001 - a bad setting is reported by the command itself
        name = os.environ.get("GRIDBOT_TIMEZONE", "Asia/Shanghai")
        try:
            return ZoneInfo(name)
        except Exception:  # noqa: BLE001
            return ZoneInfo("Asia/Shanghai")


def setup_logging(level: str | None = None) -> None:
    root = logging.getLogger()
    if any(isinstance(f, RedactingFilter) for h in root.handlers for f in h.filters):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(ZonedFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", tz=log_zone()))
    handler.addFilter(RateLimitFilter())
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(level or os.environ.get("GRIDBOT_LOG_LEVEL", "INFO"))
    for noisy in ("jieba", "aiohttp.access", "apscheduler.executors.default", "sqlalchemy.engine"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
