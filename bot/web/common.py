"""What the web routes share: refusals as JSON, query parameters, the logged-in viewer."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from aiohttp import web

from handlers.people import Scope
from storage.models import Staff

JSON_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


class ApiError(Exception):
    """An expected refusal: answered as JSON `{"error": message}` with this status."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps, headers={**JSON_HEADERS, **(headers or {})})


def mask_phone(phone: str | None) -> str:
    """138****5678: the first three and last four characters of a mobile number; less of shorter ones."""
    if not phone:
        return ""
    p = re.sub(r"\s+", "", phone)
    if len(p) >= 11:
        return p[:3] + "****" + p[-4:]
    if len(p) >= 7:
        return p[:2] + "****" + p[-2:]
    return "****"


def label_of(number: str, unit: str, room: str) -> str:
    return f"{number}-{unit}-{room}" if unit else f"{number}-{room}"


def client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


def int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ApiError(400, f"{name} 应为整数") from exc
    return max(lo, min(hi, value))


@dataclass
class Viewer:
    """The logged-in staff member: one person, possibly one Staff row per channel."""

    uid: str
    staff: list[Staff]
    scope: Scope

    @property
    def name(self) -> str:
        return self.staff[0].name

    @property
    def role(self) -> str:
        return "、".join(dict.fromkeys(st.role for st in self.staff))


def answers_errors(fn: Callable[..., Awaitable[web.StreamResponse]]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Turns an ApiError into its JSON answer; works on functions and methods alike."""

    @functools.wraps(fn)
    async def wrapper(*args: Any) -> web.StreamResponse:
        try:
            return await fn(*args)
        except ApiError as exc:
            return json_response({"error": exc.message}, status=exc.status, headers=exc.headers)

    return wrapper




def parse_date(raw: str, default: date) -> date:
    raw = raw.strip()
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise ApiError(400, "日期格式应为 YYYY-MM-DD") from exc


def local_iso(when: datetime | None, tz: Any) -> str | None:
    return None if when is None else when.astimezone(tz).isoformat(timespec="seconds")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
AuthedHandler = Callable[[web.Request, "Viewer", Any], Awaitable[web.StreamResponse]]
