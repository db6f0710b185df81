"""Helpers shared by the handlers: time, text, privacy of group lines, addressing a person, labels, audit.

Who is responsible for what (scope, alert chains, the household a message is about) is decided in
handlers/people.py; reads that are not about conversations live in storage/queries.py.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.dispatch import Context, Filter
from bot.model import Outbound
from handlers import texts
from nlp.lexicon import LEXICON, Kind
from storage.models import (
    AuditEvent,
    Building,
    Quarantine,
    Resident,
    Staff,
)

T = TypeVar("T")
# Rows a timer writes per commit: large enough to be fast, small enough that a crash costs little.
CHUNK = 1000

# --- time -----------------------------------------------------------------------------------------

def local_date(settings: Settings, now: datetime) -> date:
    return now.astimezone(settings.tz).date()


def slot_of(settings: Settings, now: datetime) -> str:
    return settings.slot_at(now.astimezone(settings.tz).time())


def hhmm(settings: Settings, when: datetime) -> str:
    return when.astimezone(settings.tz).strftime("%H:%M")


# --- text -----------------------------------------------------------------------------------------


def normalize_command(text: str) -> str:
    """Full-width letters, digits, spaces and colons folded to half-width; runs of space to one."""
    text = unicodedata.normalize("NFKC", text or "")
    text = text.replace("：", ":").replace("\u3000", " ")
    return re.sub(r"\s+", " ", text).strip()


_CODE = re.compile(r"^([ER])\s*(\d+)\s*[,，:]?\s*(.*)$", re.I | re.S)


def staff_command(*verbs: str, code: str | None = None) -> Filter:
    """A filter for a staff member's private command that starts with one of `verbs`.

    Gives the handler `verb` and `args`; with `code` ("E" or "R") it accepts only an argument that is
    such a code, and gives `code` ("E23") and `note` (the rest, or None). Staff commands are private
    only: in a building group a staff member is one of the neighbours.
    """
    pattern = re.compile(r"^(" + "|".join(map(re.escape, verbs)) + r")\s*:?\s*(.*)$", re.I | re.S)

    def accept(ctx: Context) -> dict | bool:
        if ctx.staff is None or ctx.inbound.is_group:
            return False
        m = pattern.match(normalize_command(ctx.text))
        if not m:
            return False
        data: dict[str, Any] = {"verb": m.group(1), "args": m.group(2).strip()}
        if code is not None:
            c = _CODE.match(data["args"])
            if not c or c.group(1).upper() != code:
                return False
            data.update(code=f"{code}{c.group(2)}", note=c.group(3).strip() or None)
        return data

    return accept


# How much of a resident's words an alert quotes: a 10,000-character paste would be a dozen WeCom
# messages to every recipient; the whole text is on the dashboard.
QUOTE_LIMIT = 300


def quote_text(text: str, limit: int = QUOTE_LIMIT) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit].rstrip() + "…（全文见工作台）"


def fmt_temp(t: float | None) -> str:
    return f"{t:.1f}℃" if t is not None else ""


def symptoms_zh(symptoms: Iterable[str]) -> list[str]:
    return [texts.SYMPTOMS_ZH.get(s, s) for s in symptoms]


# The parser's own words for a life at risk (nlp.lexicon): an alert's summary keeps them as written.
_SIGNS = re.compile("|".join(re.escape(w) for w in sorted(
    (w for w, (kind, _v) in LEXICON.items() if kind in (Kind.EMERGENCY, Kind.CRY) and len(w) >= 2),
    key=len, reverse=True)))


def emergency_words(text: str) -> list[str]:
    """'救命 我爸晕倒了' → ['救命', '晕倒']: what a worker must read first, in the order written."""
    return list(dict.fromkeys(m.group(0) for m in _SIGNS.finditer(unicodedata.normalize("NFKC", text or ""))))


def health_summary(temperature: float | None, symptoms: Iterable[str], fever: bool = False,
                   text: str | None = None) -> str:
    """'紧急：晕倒；体温38.5℃，咳嗽' — for private messages only. With `text` (an emergency), the
    emergency words of it lead, so "救命 我爸晕倒了" is never summarised as 身体不适."""
    signs = emergency_words(text) if text else []
    lead = f"紧急：{'、'.join(signs)}" if signs else ""
    parts = []
    if temperature is not None:
        parts.append("体温" + fmt_temp(temperature))
    elif fever:
        parts.append("发热")
    parts += [s for s in symptoms_zh(symptoms) if not (s == "发热" and parts)]
    body = "，".join(parts)
    if lead:
        return f"{lead}；{body}" if body else lead
    return body or "身体不适"


# --- privacy: what may go to a group ----------------------------------------------------------------

_HEALTH_IN_GROUP = re.compile(
    r"(?<![\d.])(3[4-9]|4[0-2])(\.\d)?\s*(℃|°|度)|体温|发烧|发热|低烧|高烧|咳|喉咙|咽痛|乏力|呼吸|胸闷|腹泻|"
    r"拉肚子|嗅觉|味觉|头痛|头疼|流涕|鼻涕|肌肉|畏寒|发冷|呕吐|恶心|隔离|(?<!\d)\d{1,3}-\d{1,2}-\d{2,4}"
)


class PrivacyError(ValueError):
    """A handler tried to put health details or an address into a group message."""


def group_message(building: Building | None, text: str, *, channel: str | None = None,
                  chat_id: str | None = None, reply_to: str | None = None, kind: str = "reply") -> Outbound:
    """The one way a handler writes to a group: refuses temperatures, symptoms and room numbers.

    Staff notices do not pass here (they are the staff member's own words, sent on purpose).
    """
    if _HEALTH_IN_GROUP.search(text):
        raise PrivacyError("health detail or address in a group message")
    to_chat = chat_id or (building.chat_id if building else None)
    if not to_chat:
        raise ValueError("no group to write to")
    return Outbound(channel=channel or (building.channel if building else "wecom"), to_chat=to_chat,
                    text=text, reply_to=reply_to, kind=kind)


def looks_private(text: str) -> bool:
    """True when the text carries what must not go to a group (used by tests and the guard)."""
    return bool(_HEALTH_IN_GROUP.search(text))


# --- addressing people ------------------------------------------------------------------------------


def private_channel(channel: str | None, fallback: str | None = None) -> str:
    """The channel for a private message: the AI bot can only answer in place, so its users are
    reached through the WeCom app (the same userid space)."""
    channel = channel or fallback
    if channel in (None, "aibot"):
        return "wecom"
    return channel


def to_person(person: Resident | Staff, text: str, *, kind: str = "reply", dedup_key: str | None = None,
              fallback_channel: str | None = None) -> Outbound | None:
    """A private message to a resident or a staff member; None when they have no chat id.

    `fallback_channel` is used when the person's own channel is not recorded (their building's)."""
    if not person.channel_user_id:
        return None
    return Outbound(channel=private_channel(person.channel, fallback_channel), to_user=person.channel_user_id,
                    text=text, kind=kind, dedup_key=dedup_key)


def to_sender(ctx: Context, text: str, *, kind: str = "reply") -> Outbound:
    """A private message to whoever wrote this message, wherever they wrote it.

    A private chat is answered in place (keeping the channel's reply handle); a group message is
    answered privately on the same user id — via the WeCom app for the AI bot, whose own reply
    handle would post into the group.
    """
    if not ctx.inbound.is_group:
        return ctx.reply(text, kind=kind)
    return Outbound(channel=private_channel(ctx.inbound.channel), to_user=ctx.inbound.sender_id, text=text,
                    kind=kind)


def compact(messages: Iterable[Outbound | None]) -> list[Outbound]:
    return [m for m in messages if m is not None]


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


async def group_buildings(session: AsyncSession) -> list[tuple[int, str, str | None]]:
    """(id, chat id, channel) of every building that has a group chat."""
    return [tuple(r) for r in (await session.execute(
        select(Building.id, Building.chat_id, Building.channel)
        .where(Building.chat_id.is_not(None)).order_by(Building.id))).all()]


# --- households and residents -----------------------------------------------------------------------

def find_address_in(text: str) -> str | None:
    """A bare '3-2-501' in a message, for when the parser gave none."""
    m = re.search(r"(?<![\d.])(\d{1,3})\s*[-－—]\s*(\d{1,2})\s*[-－—]\s*(\d{2,4})(?![\d.])", text)
    if m:
        return f"{m.group(1)}-{m.group(2)}-{m.group(3)}"
    m = re.search(r"(?<![\d.])(\d{1,3})\s*[-－—]\s*(\d{1,4})(?![\d.\-－—])", text)
    if m:
        return f"{m.group(1)}-{m.group(2)}"
    return None


async def active_quarantine(session: AsyncSession, resident_id: int, day: date) -> Quarantine | None:
    return await session.scalar(
        select(Quarantine).where(Quarantine.resident_id == resident_id, Quarantine.released_at.is_(None),
                                 Quarantine.start <= day).order_by(Quarantine.start.desc()).limit(1))


async def category_label(session: AsyncSession, resident: Resident | None, day: date) -> str:
    """'居家隔离 第5天/共14天', '重点人员', '常住'..."""
    if resident is None:
        return ""
    parts = []
    q = await active_quarantine(session, resident.id, day)
    if q is not None:
        parts.append(f"居家隔离 第{q.day_of(day)}天/共{q.days}天")
    if resident.is_key_person:
        parts.append("重点人员")
    if not parts:
        parts.append(resident.category)
    return "，".join(parts)


# --- audit ------------------------------------------------------------------------------------------


def audit(session: AsyncSession, now: datetime, staff: Staff | None, action: str, target: str | None,
          **detail: Any) -> None:
    """Who did what: never put health details in `detail` (codes and labels only)."""
    session.add(AuditEvent(at=now, staff_id=staff.id if staff else None, action=action, target=target,
                           detail=detail))
