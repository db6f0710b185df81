"""Whom a message reports on, sound-alike slips, and the new notations of the issue."""

from __future__ import annotations

import pytest

from nlp import parse
from nlp.subjects import anchors_in


def test_anchors() -> None:
    found = [(a.kind, a.text) for a in anchors_in("楼长报：3号楼王某 2单元401刘大爷")]
    assert ("address", "3号楼") in found
    assert ("name", "王某") in found
    assert ("name", "刘大爷") in found
    assert anchors_in("今天挺好") == []


def test_one_subject_for_a_third_party_report() -> None:
    (subject,) = parse("3号楼王某 38.5").subjects
    assert subject.who == "other" and subject.name == "王某"
    assert subject.temperature == 38.5 and subject.fever and subject.symptoms == ("fever",)


def test_jielong_is_read_line_by_line() -> None:
    result = parse("接龙\n1. 3-1-101 36.5\n2. 3-1-102 37.8 咳嗽\n3. 3-1-103 36.4")
    assert [s.address for s in result.subjects] == ["3-1-101", "3-1-102", "3-1-103"]
    assert [s.fever for s in result.subjects] == [False, True, False]
    assert result.fever and result.temperature == 37.8 and result.checkin == "abnormal"
    assert "cough" in result.subjects[1].symptoms


def test_a_list_all_well_is_safe() -> None:
    result = parse("2单元401 刘大爷 36.7\n2单元402 张阿姨 36.5")
    assert not result.fever and result.checkin == "safe" and len(result.subjects) == 2


def test_subjects_and_uncertain_are_in_the_record() -> None:
    data = parse("孩子发烧38.2").to_dict()
    assert data["subjects"] == [
        {"who": "family", "address": None, "name": None, "temperature": 38.2, "fever": True, "symptoms": ["fever"]}
    ]
    assert data["uncertain"] is False
    assert parse("37").uncertain


@pytest.mark.parametrize(("text", "fever", "emergency"), [
    ("孩子发少了", True, False),
    ("老伴咳数两天", False, False),
    ("救明", False, True),
    ("孩子抽处了", False, True),
    ("呼吸困南", False, True),
    ("头发少了", False, False),
    ("吃完饭困了", False, False),
])
def test_sound_alike_slips(text: str, fever: bool, emergency: bool) -> None:
    result = parse(text)
    assert (result.fever, result.emergency) == (fever, emergency)


def test_cough_slip_is_a_cough() -> None:
    assert parse("老伴咳数两天").symptoms == ("cough",)


@pytest.mark.parametrize(("text", "value"), [
    ("孩子38 度 5", 38.5),
    ("体温 37 . 5", 37.5),
    ("三七点五", 37.5),
    ("体温三八度二", 38.2),
    ("我最高37.8", 37.8),
    ("37.5°c", 37.5),
    ("３７．６℃", 37.6),
])
def test_more_notations(text: str, value: float) -> None:
    assert parse(text).temperature == pytest.approx(value)


@pytest.mark.parametrize("text", ["明天最高38度 多云", "三八点下班"])
def test_weather_and_time_are_not_readings(text: str) -> None:
    assert parse(text).temperature is None


@pytest.mark.parametrize("text", ["我发寒热了", "吃了药我还没退", "發燒三十八度"])
def test_fever_phrasings(text: str) -> None:
    assert parse(text).fever


@pytest.mark.parametrize("text", [
    "一口气上不来", "呼吸越来越困难", "脸憋得发青", "躺在地上起不来", "不想活了", "俺爹摔倒了起不来",
])
def test_emergencies_by_composition(text: str) -> None:
    assert parse(text).emergency


@pytest.mark.parametrize("text", ["生活困难", "早上起不来", "呼吸不困难", "菜价涨得让人喘不过气"])
def test_not_emergencies(text: str) -> None:
    assert not parse(text).emergency


def test_an_address_alone_is_the_senders_own() -> None:
    result = parse("3-2-501 36.5 正常")
    assert result.concerns == "self"
    assert result.subjects[0].who == "self" and result.subjects[0].address == "3-2-501"


def test_a_named_person_at_an_address_has_both() -> None:
    (subject,) = parse("3号楼王某 38.5").subjects
    assert (subject.address, subject.name) == ("3号楼", "王某")


# --- one subject per person ---------------------------------------------------------------------

import json  # noqa: E402
from pathlib import Path  # noqa: E402

from nlp.subjects import Subject, merge_subjects  # noqa: E402

_DATA = Path(__file__).parent / "data"
_PREFIXES = ("", "楼长报：3号楼2单元502 王某某 ", "网格员：5-1-301 ", "志愿者反馈：8号楼1单元101 李大爷 ")


def _texts() -> list[str]:
    texts = []
    for path in sorted(_DATA.glob("nlp_*.jsonl")):
        with path.open(encoding="utf-8") as f:
            texts.extend(json.loads(line)["text"] for line in f if line.strip())
    return texts


def _reports_nothing(s: Subject) -> bool:
    return s.temperature is None and not s.fever and not s.symptoms


def test_a_leaders_report_is_one_subject() -> None:
    (subject,) = parse("楼长报：3号楼2单元502 王某某 今天体温38.2，已告知家属").subjects
    assert (subject.address, subject.name, subject.temperature, subject.fever) == ("3号楼2单元502", "王某某", 38.2, True)


def test_merge_subjects_keeps_different_people_apart() -> None:
    a = Subject("other", "3-1-101", None)
    b = Subject("other", "3-1-101", "王某", 38.0, True, ("fever",))
    c = Subject("other", "3-1-102", "李某", 36.5)
    assert merge_subjects([a, b]) == [Subject("other", "3-1-101", "王某", 38.0, True, ("fever",))]
    assert merge_subjects([a, c]) == [a, c]  # another household
    assert merge_subjects([b, c]) == [b, c]  # each reports something
    assert merge_subjects([Subject("other", None, "王某"), Subject("other", "3-1-101", "王某", 37.9, True)]) == [
        Subject("other", "3-1-101", "王某", 37.9, True)
    ]


@pytest.mark.parametrize("prefix", _PREFIXES)
def test_no_address_alone_is_followed_by_the_same_address(prefix: str) -> None:
    """The invariant: an address-only subject with nothing reported is never
    followed by a subject with the same address (they are one person)."""
    bad = []
    for text in _texts():
        subjects = parse(prefix + text).subjects
        for first, second in zip(subjects, subjects[1:], strict=False):
            if first.address is not None and first.name is None and _reports_nothing(first) and first.address == second.address:
                bad.append(f"{prefix + text!r}: {[s.to_dict() for s in subjects]}")
    assert not bad, f"{len(bad)} split\n" + "\n".join(bad[:10])
