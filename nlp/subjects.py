"""Whom a message reports on: the people and households it names.

A building leader, volunteer or grid worker reports for others ("3号楼王某
38.5", "隔离户李某 下午37.6"); a 接龙 list has one household a line.  A
person named by surname (王某, 李某某, 刘大爷), by a form's 姓名 field, or a
household given by its address, is a definite subject: what is said about
them is a report, not news.  "有人", "有个" with nothing to pin them down
stay somebody unnamed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

# The commonest surnames: enough to tell "王某" and "刘大爷" from "某天".
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
    "常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
)
_NAME_RE = re.compile(
    "[" + _SURNAMES + "](?:某某|某|[大老小]?(?:爷爷|奶奶|大爷|大娘|阿姨|叔叔|婶婶|婶子|大妈|大姐|大哥|师傅|老师|先生|女士|叔|婶|姨|伯|嫂))"
    "|(?<![\u4e00-\u9fff])[老小][" + _SURNAMES + "](?=家|[^\u4e00-\u9fff]|$)"
    "|(?<=姓名)[:：\\s]*[\u4e00-\u9fff]{2,4}"
)
_ADDRESS_RE = re.compile(
    r"\d{1,3}\s*(?:号楼|栋|幢|号院)(?:\s*\d{1,2}\s*单元)?(?:\s*\d{2,4}\s*(?:室|号)?)?"
    r"|\d{1,2}\s*单元\s*\d{2,4}\s*(?:室|号)?"
    r"|(?<![\d.])\d{1,3}\s*[-－—]\s*\d{1,2}\s*[-－—]\s*\d{2,4}(?![\d.])"
    r"|(?<![\d.])\d{1,3}\s*[-－—]\s*\d{3,4}(?![\d.])"
    r"|(?<![\d.])\d{3,4}\s*室"
)
# What every anchor holds: one scan rules them all out.
_HINT_RE = re.compile(r"\d\s*(?:号楼|栋|幢|号院|单元|室|[-－—]\s*\d)|[某老小姓]|大爷|奶奶|大娘|阿姨|叔|婶|姨|伯|嫂|师傅|老师")


@dataclass(frozen=True, slots=True)
class Anchor:
    """A name or an address, as written, at text[start:end]."""

    start: int
    end: int
    kind: str  # "name" or "address"
    text: str


@dataclass(frozen=True, slots=True)
class Subject:
    """One person or household a message reports on (see CONTRACT.md, "Who a report is about")."""

    who: str  # self / family / neighbour / other / unknown
    address: str | None = None
    name: str | None = None
    temperature: float | None = None
    fever: bool = False
    symptoms: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "who": self.who,
            "address": self.address,
            "name": self.name,
            "temperature": self.temperature,
            "fever": self.fever,
            "symptoms": list(self.symptoms),
        }


def anchors_in(text: str) -> list[Anchor]:
    """Every name and address in ``text``, in order."""
    if _HINT_RE.search(text) is None:
        return []
    found = [Anchor(m.start(), m.end(), "address", m.group(0).strip()) for m in _ADDRESS_RE.finditer(text)]
    for m in _NAME_RE.finditer(text):
        name = m.group(0).lstrip(":： \t")
        if name:
            found.append(Anchor(m.start(), m.end(), "name", name))
    found.sort(key=lambda a: a.start)
    return found


def list_lines(text: str, anchors: list[Anchor]) -> list[tuple[int, int]]:
    """The (start, end) of each line that names a household, when the message is a
    list of them (a 接龙, a leader's summary, a pasted table): two such lines or more."""
    if "\n" not in text or len(anchors) < 2:
        return []
    lines: list[tuple[int, int]] = []
    pos = 0
    for line in text.split("\n"):
        end = pos + len(line)
        if any(pos <= a.start < end for a in anchors):
            lines.append((pos, end))
        pos = end + 1
    # A form of one household has its address on one line and its name on another:
    # only lines that each name someone *and* say something are a list.
    return lines if len(lines) >= 2 else []


def _fits(a: str | None, b: str | None) -> bool:
    return a is None or b is None or a == b


def merge_subjects(subjects: list[Subject]) -> list[Subject]:
    """One subject per person: an entry that reports nothing (an address or a
    name alone, "楼长报：3号楼2单元502 王某某 今天体温38.2") is the same person
    as the next entry whose address and name agree with it, and is merged into it."""
    out: list[Subject] = []
    for subject in subjects:
        if out:
            prev = out[-1]
            empty = prev.temperature is None and not prev.fever and not prev.symptoms
            if (
                empty
                and (prev.address is not None or prev.name is not None)
                and (prev.address == subject.address or prev.name == subject.name)
                and _fits(prev.address, subject.address)
                and _fits(prev.name, subject.name)
            ):
                out[-1] = replace(
                    subject,
                    who=subject.who if subject.who != "unknown" else prev.who,
                    address=subject.address or prev.address,
                    name=subject.name or prev.name,
                )
                continue
        out.append(subject)
    return out
