"""Masks for personal data in text an operator sees: log lines, import errors.

Pure functions with no dependencies, so that storage (the roster's rejected rows) and bot (the
logging filter) share one rule without storage importing bot.
"""

from __future__ import annotations

import re

_PHONE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")
_TEMP = re.compile(r"(?<![\d.])(3[4-9]|4[0-2])(?:\.\d)?\s*(?:℃|°C|度)")


def redact(text: str) -> str:
    """Masks anything shaped like a mainland mobile number (138****5678) or a body temperature (**℃)."""
    text = _PHONE.sub(r"\1****\2", text)
    return _TEMP.sub("**℃", text)
