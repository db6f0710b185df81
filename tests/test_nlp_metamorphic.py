"""Metamorphic tests: rewrites of every labelled message that must not change
whether it reports a fever or an emergency.

Each rewrite is something real senders do to the same fact: a building leader
reports it for someone else, a closing "已上报", spaces typed inside a number,
a speech-to-text slip, traditional characters, full-width digits, one line of
a 接龙 list.  A labelled fever or emergency must survive every rewrite; a
message that is not one must not become one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from nlp import parse
from nlp.normalize import TRAD_TO_SIMP

DATA = Path(__file__).parent / "data"
SHARED_DEV = Path(__file__).resolve().parents[2] / "shared" / "nlp" / "dev.jsonl"


def _sets() -> list[Path]:
    paths = sorted(DATA.glob("nlp_*.jsonl"))
    if SHARED_DEV.exists():
        paths.append(SHARED_DEV)
    return paths


def _rows() -> list[dict]:
    seen: set[str] = set()
    rows = []
    for path in _sets():
        with path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    if row["text"] not in seen:
                        seen.add(row["text"])
                        rows.append(row)
    return rows


ROWS = _rows()

# One traditional spelling for each simplified character that has one.
_SIMP_TO_TRAD = str.maketrans({s: t for t, s in reversed(list(TRAD_TO_SIMP.items())) if len(s) == 1})
_FULL_WIDTH = str.maketrans({**{str(d): chr(0xFF10 + d) for d in range(10)}, ".": "．"})
# Sound-alike slips that speech-to-text makes of the health words.
_SLIPS = (("发烧", "发少"), ("咳嗽", "咳数"), ("救命", "救明"), ("抽搐", "抽处"), ("困难", "困南"))


def third_party(text: str) -> str:
    return "楼长报：3号楼王某 " + text


def reported_on(text: str) -> str:
    return text.rstrip() + " 已上报"


def told_family(text: str) -> str:
    return text.rstrip() + "，已告知家属"


def spaced_numbers(text: str) -> str:
    text = re.sub(r"(?<=\d)\.(?=\d)", " . ", text)
    return re.sub(r"(?<=\d)度(?=\d)", " 度 ", text)


def sound_alike(text: str) -> str:
    for word, slip in _SLIPS:
        text = text.replace(word, slip)
    return text


def traditional(text: str) -> str:
    return text.translate(_SIMP_TO_TRAD)


def full_width(text: str) -> str:
    return text.translate(_FULL_WIDTH)


def jielong_line(text: str) -> str:
    return "#接龙 今日体温\n1. 5-1-101 36.6 正常\n2. 3-2-501 " + text


REWRITES: dict[str, Callable[[str], str]] = {
    f.__name__: f
    for f in (third_party, reported_on, told_family, spaced_numbers, sound_alike, traditional, full_width, jielong_line)
}


def _failures(rewrite: Callable[[str], str], field: str) -> list[str]:
    bad = []
    for row in ROWS:
        text = row["text"]
        new = rewrite(text)
        if new == text:
            continue
        want = True if row[field] else getattr(parse(text), field)
        got = getattr(parse(new), field)
        if got != want:
            bad.append(f"{new!r}: {field} want {want} got {got}")
    return bad


def test_the_sets_are_there() -> None:
    assert len(ROWS) >= 700


@pytest.mark.parametrize("name", sorted(REWRITES))
@pytest.mark.parametrize("field", ["fever", "emergency"])
def test_rewrite_keeps_the_label(name: str, field: str) -> None:
    bad = _failures(REWRITES[name], field)
    assert not bad, f"{len(bad)} changed\n" + "\n".join(bad[:40])


def test_rewrites_change_the_text() -> None:
    assert sound_alike("发烧咳嗽") == "发少咳数"
    assert traditional("发烧") == "發燒"
    assert full_width("36.5") == "３６．５"
    assert spaced_numbers("38.5 和 36度8") == "38 . 5 和 36 度 8"
