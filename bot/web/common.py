"""What the web routes share: refusals as JSON, query parameters, the logged-in viewer."""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from collections.abc import Awaitable, Callable, Sequence
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


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip().strip('"')
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:4711"
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.7:4711"
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(addr: Any, trusted: Sequence[Any]) -> bool:
    return addr is not None and any(addr.version == net.version and addr in net for net in trusted)


def client_ip(request: web.Request, trusted: Sequence[Any] = ()) -> str:
    """The client's address: the TCP peer, or, when the peer is one of the `trusted` proxies
    (GRIDBOT_TRUSTED_PROXIES), the right-most address of X-Forwarded-For that is not itself a
    trusted proxy (each proxy appends the address it got the request from, so the entries left of
    it are whatever the client chose to send). From any other peer the header is ignored."""
    peer = request.remote or "unknown"
    if not trusted or not _trusted(_ip(peer), trusted):
        return peer
    hops = [h for line in request.headers.getall("X-Forwarded-For", []) for h in line.split(",") if h.strip()]
    for hop in reversed(hops):
        addr = _ip(hop)
        if addr is None:
            return peer  # a garbled chain: fall back to what we know
        if not _trusted(addr, trusted):
            return str(addr)
    return str(_ip(hops[0])) if hops else peer


def is_https(request: web.Request, trusted: Sequence[Any] = ()) -> bool:
    """Whether the client reached us over TLS: our own TLS, or a trusted proxy's
    `X-Forwarded-Proto: https` (its first value: the proxy nearest the client)."""
    if request.secure:
        return True
    if not trusted or not _trusted(_ip(request.remote or ""), trusted):
        return False
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return proto == "https"


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
