"""Body temperatures, and only body temperatures, out of a message.

A check-in is full of numbers: building and room, age, price, date, time,
phone, the weather.  A number is taken as a body temperature only when its
shape says so (a decimal between 34 and 43, a Chinese numeral with 度/点) or
when an integer in the fever range carries a degree unit or follows a reading
word ("烧到38了", "体温37").  Numbers next to weather, water or room words, or
written as a threshold ("≥37.3", "超过37.3度"), are never readings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CN_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}

# "36.5", "36。5" (the ideographic stop typed for a dot), "36度5", "36点5".
# The look-behinds sit after the first digit ("(?<![\d.].)" checks the
# character before it) so that each pattern starts with [34] and the regex
# engine can prefix-scan for it instead of testing a look-behind everywhere.
_DECIMAL_RE = re.compile(r"([34](?<![\d.].)\d)(?:\s?[.·]\s?|。|度|点)(\d)\d?(?![\d.:])(?:°[cC]|°|摄氏度|度|[cC](?![a-zA-Z]))?")
# "三十六度五", "三十七点五", "三十八度", "三十九度多", "三十六度半", "四十度".
_CN_RE = re.compile(r"([三四])十([一二三四五六七八九]?)(?:度|点)([一二三四五六七八九零〇半]|多|几)?")
# "三七点五", "三八度二", "三九度": the tens digit said without 十.
_CN_BARE_RE = re.compile(r"(?<![一二三四五六七八九十])(三[五六七八九]|四[零〇一二])(?:度|点)([一二三四五六七八九零〇半]|多)?")
# An integer in the fever range, with its unit if any: "38度", "40°C", "39度多".
_INT_RE = re.compile(r"([34](?<![\d.\-/].)\d)(?![\d.])(度多|度几|度半|度|点多|点几|°[cC]|°|摄氏度|[cC](?![a-zA-Z]))?")
# "体温365", "量了372": a reading typed without its decimal point, after a reading word.
_DOTLESS_RE = re.compile(
    r"(?:体温|体温是|量了|量的|测了|测的|腋温|额温|耳温|体温为)[:：\s]{0,2}(3[5-9]\d|4[0-2]\d)(?![\d.])"
)

# Spans that hold numbers of other kinds; they are blanked before matching.
# Every branch starts with a digit; that digit is factored out in front
# (\d{1,2} = \d\d?, \d{7,} = \d\d{6,}, \d+ = \d\d*, same backtracking order)
# so that the regex engine skips non-digit positions with a fast prefix scan
# instead of trying all five branches at every character.
_MASK_RE = re.compile(
    r"\d(?:"
    r"\d?[:：]\d{2}"  # clock time
    r"|\d{6,}"  # phone and ID numbers
    r"|\d*[-－]\d+[-－]\d+"  # building-unit-room
    r"|\d*(?:号楼|号院|栋|幢|单元|楼)"  # building and unit numbers
    r"|\d*[-－]\d{3,4}"  # unit-room
    r")"
)

# Words that make a nearby degree figure a thing's temperature, not a body's.
_NOT_BODY_BEFORE_RE = re.compile(r"(气温|水温|室温|屋里|屋内|室内|外面|外边|零下|暖气|天气|油温|洗澡水|度数)[^，,。；;\n]{0,4}$")
# "最高37.8" is the day's highest reading unless the message speaks of the weather.
_PEAK_BEFORE_RE = re.compile(r"(最高|最低)[^，,。；;\n]{0,2}$")
_WEATHER_RE = re.compile(r"气温|天气|预报|晴|多云|阴天|下雨|下雪|降温|升温|刮风|大风|室温|屋里|室内")
# A threshold or a rule rather than a reading.
_THRESHOLD_BEFORE_RE = re.compile(r"(≥|>|＞|大于|超过|高于|低于|不到|达到|以上是|不是|并非|而不是)\s*$")
# "40度的热水", "36.5元": the unit after the figure names what it measures.
_NOT_BODY_AFTER_RE = re.compile(r"^\s*(?:的)?(?:热水|开水|水|洗澡|泡脚|元|块|油|天气|高温|气温)")
_THRESHOLD_AFTER_RE = re.compile(r"^\s*(以上|以下|及以上|以内)")
# "烧到38度以上了": after a verb of what happened, 以上 is a reading, not a rule.
_EVENT_BEFORE_RE = re.compile(r"(烧到|烧了|量了|测了|一量|又量|升到|涨到)[:：\s]{0,2}$")
# An integer without a unit is a reading only right after a reading word.
_READING_BEFORE_RE = re.compile(
    r"(体温|烧到|发烧|高烧|低烧|发热|烧了|量了|量的|测了|测的|腋温|额温|耳温|腋下|又量|一量|还是|还有|现在|体温是|fever|temp|升到|涨到)[:：\s了的是一下都]{0,3}$"
)
_COUNT_AFTER_RE = re.compile(r"^\s*(个|号|楼|单元|室|户|人|口|斤|块|元|袋|箱|盒|包|提|颗|天|次|回|分|秒|小时|年|月|日|岁|周岁|%|米|层|件|位|名|栋|只|瓶|支|粒|片|公斤|克|g|kg)")
_AGE_BEFORE_RE = re.compile(r"(今年|年纪|岁数|年龄)\s*$")


@dataclass(frozen=True, slots=True)
class Reading:
    """A body temperature stated in the text, in °C, at text[start:end]."""

    value: float
    start: int
    end: int


def _blank(text: str, start: int, end: int) -> str:
    return text[:start] + " " * (end - start) + text[end:]


def _context_ok(text: str, start: int, end: int) -> bool:
    before = text[max(0, start - 12) : start]
    after = text[end : end + 6]
    if _NOT_BODY_BEFORE_RE.search(before) or _THRESHOLD_BEFORE_RE.search(before):
        return False
    if _PEAK_BEFORE_RE.search(before) and _WEATHER_RE.search(text):
        return False
    if _NOT_BODY_AFTER_RE.match(after):
        return False
    return not _THRESHOLD_AFTER_RE.match(after) or bool(_EVENT_BEFORE_RE.search(before))


def _mask_blank(m: re.Match[str]) -> str:
    return " " * (m.end() - m.start())


def find_readings(text: str) -> list[Reading]:
    """All body temperatures stated in ``text`` (already normalised), in order."""
    # The digit patterns all start with an ASCII 3 or 4 and the numeral one
    # with 三/四: without them there is nothing to find, and without a 3 or 4
    # the three digit passes can be skipped.
    has_digits = "3" in text or "4" in text
    if not has_digits and "三" not in text and "四" not in text:
        return []
    work = _MASK_RE.sub(_mask_blank, text)
    found: list[Reading] = []

    if has_digits:
        for m in _DECIMAL_RE.finditer(work):
            value = int(m.group(1)) + int(m.group(2)) / 10
            if 34.0 <= value <= 43.0 and _context_ok(work, m.start(), m.end()):
                found.append(Reading(round(value, 1), m.start(), m.end()))
            work = _blank(work, m.start(), m.end())

    if "十" in work:
        for m in _CN_RE.finditer(work):
            whole = _CN_DIGIT[m.group(1)] * 10 + (_CN_DIGIT[m.group(2)] if m.group(2) else 0)
            tail = m.group(3)
            tenth = 5 if tail == "半" else 0 if tail in (None, "多", "几") else _CN_DIGIT[tail]
            value = whole + tenth / 10
            if 34.0 <= value <= 43.0 and _context_ok(work, m.start(), m.end()):
                found.append(Reading(round(value, 1), m.start(), m.end()))
            work = _blank(work, m.start(), m.end())

    if "三" in work or "四" in work:
        for m in _CN_BARE_RE.finditer(work):
            pair = m.group(1)
            tail = m.group(2)
            if tail is None and not work.startswith("度", m.end(1)):
                continue  # "三八点" is a time of day, "三八度" a reading
            value = _CN_DIGIT[pair[0]] * 10 + _CN_DIGIT[pair[1]] + (0.5 if tail == "半" else 0 if tail in (None, "多") else _CN_DIGIT[tail]) / 10
            if 35.0 <= value <= 42.9 and _context_ok(work, m.start(), m.end()):
                found.append(Reading(round(value, 1), m.start(), m.end()))
            work = _blank(work, m.start(), m.end())
        found.sort(key=lambda r: r.start)

    if not has_digits:
        return found
    for m in _DOTLESS_RE.finditer(work):
        start, end = m.span(1)
        if _COUNT_AFTER_RE.match(work[end : end + 4]) or not _context_ok(work, start, end):
            continue
        found.append(Reading(int(m.group(1)) / 10, start, end))
        work = _blank(work, start, end)

    for m in _INT_RE.finditer(work):
        whole = int(m.group(1))
        unit = m.group(2)
        if not 35 <= whole <= 42:
            continue
        before = work[max(0, m.start() - 12) : m.start()]
        after = work[m.end() : m.end() + 4]
        if unit is None:
            if not _READING_BEFORE_RE.search(before) or _COUNT_AFTER_RE.match(after):
                continue
        elif unit == "度" and _COUNT_AFTER_RE.match(after) is None and after[:1].isdigit():
            continue  # "36度 5号楼"-like run-ons are not worth guessing at
        if _AGE_BEFORE_RE.search(before) or not _context_ok(work, m.start(), m.end()):
            continue
        value = whole + (0.5 if unit == "度半" else 0.0)
        found.append(Reading(value, m.start(), m.end()))

    found.sort(key=lambda r: r.start)
    return found


_LONE_NUMBER_RE = re.compile(r"^\s*\d{1,4}\s*[.。]?\s*$")


def is_lone_number(text: str) -> bool:
    """A message that is just a bare number ("37", "365"): ask, don't guess."""
    return bool(_LONE_NUMBER_RE.match(text))
