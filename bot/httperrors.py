"""No 500s for bad input: what a client sends that cannot be parsed, decoded or converted is a 400
with a short reason, on every route.

`middleware` (installed by bot.app.build_app, so it covers every route whatever module adds it):
- refuses a query string with a NUL, a lone surrogate or an overlong value before any handler
  (PostgreSQL refuses NUL in text: it would surface as a database error);
- turns what a handler lets escape from parsing or converting (ValueError and UnicodeError,
  RecursionError from deeply nested JSON, OverflowError from absurd dates and numbers, the
  database's DataError) into a 400: JSON `{"error": ...}` under /api/, plain text elsewhere;
- logs any other error once, with its traceback passed through the log's redaction, and answers a
  bare 500 (aiohttp's own log line would carry the traceback unredacted).

The helpers are for handlers that want the precise reason: `query_text`, `checked_date`,
`unix_time` (a platform's timestamp, or None when absurd).
"""

from __future__ import annotations

import json
import logging
import math
import re
import traceback
from datetime import date, datetime, tzinfo
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

MAX_QUERY_VALUE = 1000
# Dates the API answers about: a typo (0001-01-01, 9999-12-31) is refused, not computed with.
OLDEST_DATE, NEWEST_DATE = date(2000, 1, 1), date(2099, 12, 31)
_BAD = re.compile("[\x00\ud800-\udfff]")


class BadInput(ValueError):
    """A client's input refused with `reason` (a 400)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def query_text(value: str, name: str = "参数", limit: int = MAX_QUERY_VALUE) -> str:
    """A query value fit for a database query: no NUL or lone surrogate, at most `limit` characters."""
    if _BAD.search(value):
        raise BadInput(f"{name} 含有无效字符")
    if len(value) > limit:
        raise BadInput(f"{name} 过长")
    return value


def checked_date(d: date, name: str = "日期") -> date:
    """`d` if it is one the API can compute with (2000-01-01 .. 2099-12-31), else BadInput."""
    if not OLDEST_DATE <= d <= NEWEST_DATE:
        raise BadInput(f"{name} 应在 {OLDEST_DATE} 与 {NEWEST_DATE} 之间")
    return d


def parse_date(raw: str, default: date, name: str = "日期") -> date:
    raw = raw.strip()
    if not raw:
        return default
    try:
        return checked_date(date.fromisoformat(raw), name)
    except BadInput:
        raise
    except ValueError:
        raise BadInput("日期格式应为 YYYY-MM-DD") from None


def unix_time(value: Any, tz: tzinfo) -> datetime | None:
    """A platform's unix timestamp (int, float or digits) as an aware datetime; None when missing,
    malformed or absurd (before 2000 or after 2100), for the caller to use its own clock."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float) or not math.isfinite(value) or not 946684800 <= value < 4102444800:
        return None
    return datetime.fromtimestamp(value, tz)


# Raised by parsing, decoding and converting what a client sent.
_CLIENT_ERRORS: tuple[type[BaseException], ...] = (ValueError, RecursionError, OverflowError)


def _reason(exc: BaseException) -> str:
    exc = getattr(exc, "orig", None) or exc
    if isinstance(exc, BadInput):
        return exc.reason
    if isinstance(exc, RecursionError):
        return "input nested too deeply"
    if isinstance(exc, UnicodeError):
        return "invalid text encoding"
    if isinstance(exc, OverflowError):
        return "value out of range"
    if isinstance(exc, json.JSONDecodeError):
        return "malformed JSON"
    return "invalid input"


def _bad_request(request: web.Request, reason: str) -> web.Response:
    if request.path.startswith("/api/"):
        return web.json_response({"error": reason}, status=400, dumps=lambda o: json.dumps(o, ensure_ascii=False))
    return web.Response(status=400, text=reason, content_type="text/plain")


def _check_query(request: web.Request) -> None:
    for name, value in request.query.items():
        query_text(name, "参数名")
        query_text(value, name[:40])
    # The API's one date parameter, checked once here for every route that takes it.
    if request.path.startswith("/api/") and request.query.get("date", "").strip():
        parse_date(request.query["date"], OLDEST_DATE)


def _is_client_error(exc: BaseException) -> bool:
    from sqlalchemy.exc import DataError, DBAPIError, StatementError

    if isinstance(exc, _CLIENT_ERRORS + (DataError,)):
        return True
    # A value SQLAlchemy could not bind (a date out of range): not the database failing.
    return (isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)
            and isinstance(exc.orig, _CLIENT_ERRORS))


def redacted_traceback(exc: BaseException) -> str:
    from bot.logs import redact

    return redact("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))


@web.middleware
async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        _check_query(request)
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:  # noqa: BLE001 - logged (redacted) and answered; the server goes on
        if _is_client_error(exc):
            reason = _reason(exc)
            log.info("%s %s refused: 400 %s (%s)", request.method, request.path, reason, type(exc).__name__)
            return _bad_request(request, reason)
        log.error("%s %s failed: %s\n%s", request.method, request.path, type(exc).__name__,
                  redacted_traceback(exc).rstrip())
        return web.Response(status=500, text="internal error", content_type="text/plain")
