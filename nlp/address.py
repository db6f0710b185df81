"""Household addresses, normalised to ``building-unit-room``.

``3-2-501``, ``3号楼2单元501``, ``3栋2单元501室`` all become ``"3-2-501"``.
A part that is not given is left empty, so the shape stays three fields:
``3单元402`` → ``"-3-402"``, ``5号楼2单元`` → ``"5-2-"``, and a courtyard
house without a unit, ``5号院3号``, → ``"5--3"``.  Forms with one field a line
(``楼号：15号楼`` / ``单元：3单元`` / ``门牌：502``) are read the same way.
"""

from __future__ import annotations

import re

_DASHED_RE = re.compile(r"(?<![\d.])(\d{1,3})\s*[-－—]\s*(\d{1,2})\s*[-－—]\s*(\d{2,4})(?![\d.])")
_WORDED_RE = re.compile(
    r"(?:(\d{1,3})\s*(?:号楼|栋|幢|号院|院|楼|号)\s*)?"
    r"(?:(\d{1,2})\s*(?:单元|门洞|门)\s*[-－]?)?"
    r"(\d{2,4})?\s*(?:室|号|户)?"
)
_BUILDING_DASH_ROOM_RE = re.compile(r"(\d{1,3})\s*(?:号楼|栋|幢)\s*(\d{1,2})\s*[-－]\s*(\d{2,4})(?!\d)")
_COURTYARD_RE = re.compile(r"(\d{1,3})\s*号院\s*(\d{1,4})\s*号?")
_FORM_BUILDING_RE = re.compile(r"楼号?\s*[:：]\s*(\d{1,3})")
_FORM_UNIT_RE = re.compile(r"单元\s*[:：]\s*(\d{1,2})")
_FORM_ROOM_RE = re.compile(r"(?:门牌|房号|房间|门牌号|室)\s*[:：]\s*(\d{2,4})")
# Every pattern above needs a decimal digit; one C-level scan rules them all out.
_DIGIT_RE = re.compile(r"\d")
_WORDED_START_RE = re.compile(r"\d{1,3}\s*(?:号楼|栋|幢|号院)|\d{1,2}\s*单元")


def _fmt(building: str | None, unit: str | None, room: str | None) -> str:
    return f"{building or ''}-{unit or ''}-{room or ''}"


def find_address(text: str) -> str | None:
    """The first household address in ``text``, normalised, or ``None``."""
    if _DIGIT_RE.search(text) is None:
        return None
    m = _DASHED_RE.search(text)
    if m:
        return _fmt(m.group(1), m.group(2), m.group(3))
    m = _BUILDING_DASH_ROOM_RE.search(text)
    if m:
        return _fmt(m.group(1), m.group(2), m.group(3))
    m = _COURTYARD_RE.search(text)
    if m:
        return _fmt(m.group(1), None, m.group(2))
    building = _FORM_BUILDING_RE.search(text)
    if building:
        unit = _FORM_UNIT_RE.search(text)
        room = _FORM_ROOM_RE.search(text)
        return _fmt(building.group(1), unit.group(1) if unit else None, room.group(1) if room else None)
    start = _WORDED_START_RE.search(text)
    if start:
        m = _WORDED_RE.match(text, start.start())
        if m and (m.group(2) or m.group(3)):
            return _fmt(m.group(1), m.group(2), m.group(3))
    return None
