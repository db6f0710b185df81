"""Configuration: environment variables `GRIDBOT_*`, or the same keys in lower case in `gridbot.toml`.

The environment wins over the file so that an operator can override one value without editing it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, fields
from datetime import time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"s": 1, "": 60, "m": 60, "h": 3600, "d": 86400}


CONFIRM_MODES = ("all", "abnormal", "none")


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


def parse_duration(text: str) -> timedelta:
    """'15m', '2h', '90s', '1d'; a bare number means minutes."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 15m, 2h)")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def parse_clock(text: str) -> time:
    hh, _, mm = text.strip().partition(":")
    return time(int(hh), int(mm or 0))


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite+aiosqlite:///gridbot.db"
    redis_url: str | None = None
    timezone: str = "Asia/Shanghai"
    host: str = "127.0.0.1"
    port: int = 8080
    wecom_corp_id: str | None = None
    wecom_agent_id: str | None = None
    wecom_secret: str | None = None
    wecom_token: str | None = None
    wecom_aes_key: str | None = None
    wecom_api_base: str = "https://qyapi.weixin.qq.com"
    wecom_aibot_token: str | None = None
    wecom_aibot_aes_key: str | None = None
    bridge_secret: str | None = None
    bridge_send_url: str | None = None
    daily_prompt_at: str = "08:00"
    progress_at: str = "12:00"
    quarantine_reminders: str = "08:00,14:00"
    quarantine_days: int = 14
    followup_after: str = "2h"
    missed_after: str = "4h"
    escalate_after: str = "15m,30m"
    ledger_at: str = "21:00"
    fever_at: float = 37.3
    # How late a scheduled slot missed while the server was down may still be sent.
    grace: str = "1h"
    # Bridge sends per minute: ordinary WeChat bans chatty accounts.
    bridge_rate: int = 20
    # The gateway's own sender id for the bot's account, so its echoes are not answered (no loops).
    bridge_bot_id: str | None = None
    # Inbox worker tasks in this process.
    workers: int = 2
    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed: addresses or networks,
    # comma-separated ("127.0.0.1, 10.0.0.0/8"). Unset: the TCP peer is the client, and the headers
    # are ignored.
    trusted_proxies: str | None = None
    # Days after a quarantine is released before the person's health details are purged, and the
    # age at which inbound message texts are blanked (handlers/retention.py).
    retention_days: int = 28
    # Which check-ins get a private "已记录" confirmation: all | abnormal | none (README: 305,147
    # check-ins a morning do not fit WeCom's app rate; an abnormal report is always answered).
    confirm: str = "abnormal"

    def __post_init__(self) -> None:
        # wechatpy users write the API base with its /cgi-bin/; the client adds that itself.
        base = (self.wecom_api_base or "").strip().rstrip("/")
        if base.endswith("/cgi-bin"):
            base = base[: -len("/cgi-bin")]
        object.__setattr__(self, "wecom_api_base", base)

    # -- derived values, parsed once so a bad value fails at start-up, not at 08:00 --
    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def reminder_times(self) -> list[time]:
        return [parse_clock(t) for t in self.quarantine_reminders.split(",") if t.strip()]

    @property
    def reminder_slots(self) -> list[tuple[str, time]]:
        """(slot, time of day) of each quarantine reminder: 'am', 'pm', then 's3', 's4'... if more."""
        times = sorted(set(self.reminder_times))
        names = ["am", "pm"] + [f"s{i}" for i in range(3, len(times) + 1)]
        return list(zip(names, times, strict=False))

    def slot_at(self, local: time) -> str:
        """The reminder slot a report at this local time answers: the latest reminder at or before
        it (a report before the first reminder of the day answers the first)."""
        slots = self.reminder_slots
        current = slots[0][0] if slots else "am"
        for name, at in slots:
            if at <= local:
                current = name
        return current

    @property
    def escalate_steps(self) -> list[timedelta]:
        return [parse_duration(t) for t in self.escalate_after.split(",") if t.strip()]

    @property
    def followup_delta(self) -> timedelta:
        return parse_duration(self.followup_after)

    @property
    def missed_delta(self) -> timedelta:
        return parse_duration(self.missed_after)

    @property
    def grace_delta(self) -> timedelta:
        return parse_duration(self.grace)

    @property
    def trusted_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(p.strip(), strict=False)
                for p in (self.trusted_proxies or "").split(",") if p.strip()]

    @property
    def wecom_enabled(self) -> bool:
        return bool(self.wecom_corp_id and self.wecom_secret and self.wecom_token and self.wecom_aes_key)

    @property
    def aibot_enabled(self) -> bool:
        return bool(self.wecom_aibot_token and self.wecom_aibot_aes_key)

    @property
    def bridge_enabled(self) -> bool:
        return bool(self.bridge_secret)

    def validate(self) -> Settings:
        """Parses every derived value once; a bad one raises ConfigError naming its setting."""
        checks: list[tuple[str, object]] = [
            ("timezone", lambda: self.tz),
            ("daily_prompt_at", lambda: parse_clock(self.daily_prompt_at)),
            ("progress_at", lambda: parse_clock(self.progress_at)),
            ("ledger_at", lambda: parse_clock(self.ledger_at)),
            ("quarantine_reminders", lambda: self.reminder_times),
            ("escalate_after", lambda: self.escalate_steps),
            ("followup_after", lambda: self.followup_delta),
            ("missed_after", lambda: self.missed_delta),
            ("grace", lambda: self.grace_delta),
            ("trusted_proxies", lambda: self.trusted_networks),
        ]
        for name, check in checks:
            try:
                check()  # type: ignore[operator]
            except Exception as exc:  # noqa: BLE001 - re-raised naming the setting
                value = getattr(self, name)
                raise ConfigError(f"GRIDBOT_{name.upper()}={value!r} is not valid: {_reason(exc)}") from exc
        for name, lo, hi in (("port", 1, 65535), ("quarantine_days", 1, 365), ("workers", 1, 256),
                             ("bridge_rate", 1, 10_000), ("retention_days", 1, 36_500)):
            value = getattr(self, name)
            if not lo <= value <= hi:
                raise ConfigError(f"GRIDBOT_{name.upper()}={value!r} is not valid: not between {lo} and {hi}")
        if self.confirm not in CONFIRM_MODES:
            raise ConfigError(f"GRIDBOT_CONFIRM={self.confirm!r} is not valid: one of {', '.join(CONFIRM_MODES)}")
        if not 30.0 <= self.fever_at <= 45.0:
            raise ConfigError(f"GRIDBOT_FEVER_AT={self.fever_at!r} is not valid: a temperature in ℃, e.g. 37.3")
        return self


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):  # ZoneInfoNotFoundError
        return "unknown time zone (use e.g. Asia/Shanghai)"
    return str(exc) or type(exc).__name__


def load_settings(env: dict[str, str] | None = None, toml_path: str | Path | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    values: dict[str, object] = {}
    path = Path(toml_path or env.get("GRIDBOT_CONFIG", "gridbot.toml"))
    if path.is_file():
        with path.open("rb") as f:
            values.update({k.lower(): v for k, v in tomllib.load(f).items()})
    known = {f.name: f for f in fields(Settings)}
    for name in known:
        key = "GRIDBOT_" + name.upper()
        if key in env and env[key] != "":
            values[name] = env[key]
    kwargs: dict[str, object] = {}
    for name, value in values.items():
        if name not in known:
            continue
        default = known[name].default
        try:
            if isinstance(default, bool):
                value = str(value).lower() in ("1", "true", "yes")
            elif isinstance(default, int):
                value = int(value)
            elif isinstance(default, float):
                value = float(value)
            elif value is not None:
                value = str(value)
        except ValueError as exc:
            kind = "a whole number" if isinstance(default, int) else "a number"
            raise ConfigError(f"GRIDBOT_{name.upper()}={value!r} is not valid: expected {kind}") from exc
        kwargs[name] = value
    return Settings(**kwargs).validate()
