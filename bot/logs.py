"""Logging that never shows a phone number or a health detail in clear.

Handlers log ids and codes (household 12, E23), not the resident's words. As a second line of
defence, a filter masks anything shaped like a mainland mobile number or a body temperature.
"""

from __future__ import annotations

import logging
import os

from storage.privacy import redact

__all__ = ["RedactingFilter", "redact", "setup_logging"]


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


def setup_logging(level: str | None = None) -> None:
    root = logging.getLogger()
    if any(isinstance(f, RedactingFilter) for h in root.handlers for f in h.filters):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(level or os.environ.get("GRIDBOT_LOG_LEVEL", "INFO"))
    for noisy in ("jieba", "aiohttp.access", "apscheduler.executors.default", "sqlalchemy.engine"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
