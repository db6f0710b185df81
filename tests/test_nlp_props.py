"""Property tests: ``parse`` never raises, stays within its types, stays fast."""

from __future__ import annotations

import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlp import parse

CHECKINS = {None, "safe", "abnormal"}
REQUESTS = {None, "groceries", "medicine", "garbage", "other"}
SYMPTOMS = {
    "fever", "cough", "sore_throat", "fatigue", "breathing", "diarrhea", "taste_smell", "headache",
    "runny_nose", "muscle_ache", "chills", "vomiting",
}
# Pieces of real messages, so that random text also exercises the rules.
FRAGMENTS = [
    "发烧", "不", "没", "37.5", "36度5", "三十八度", "咳嗽", "：", "无", "，", "。", "？", "救命", "😂", "听说",
    "3-2-501", "俺家", "孩子", "帮忙买菜", "垃圾", "退烧了", "喘不上气", "\n", "- - - - -", "「", "」", "[抱拳]",
    "發燒", "３６．６", "報平安", "吗", "\x00", "\u200d", "🤒", "如果", "通知", "差点", "晕倒",
]


def _check(text: str) -> None:
    data = parse(text).to_dict()
    json.dumps(data, ensure_ascii=False)
    assert data["checkin"] in CHECKINS
    assert data["request"] in REQUESTS
    assert set(data["symptoms"]) <= SYMPTOMS
    assert ("fever" in data["symptoms"]) == data["fever"]
    assert isinstance(data["emergency"], bool)
    assert data["temperature"] is None or 34.0 <= data["temperature"] <= 43.0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_arbitrary_unicode(text: str) -> None:
    _check(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join))
def test_message_like_text(text: str) -> None:
    _check(text)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x1F), max_size=200))
def test_control_characters(text: str) -> None:
    _check(text)


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=50), st.floats(30, 45))
def test_any_threshold(text: str, fever_at: float) -> None:
    data = parse(text, fever_at=fever_at).to_dict()
    assert ("fever" in data["symptoms"]) == data["fever"]


def test_surrogates_and_nul() -> None:
    _check("\ud800发烧\udfff 38.5\x00")
    _check("\x00" * 1000)


def test_very_long_input_is_fast() -> None:
    text = "俺家孩子发烧38.5，咳嗽，" * 10_000  # well over 100k characters
    assert len(text) > 100_000
    start = time.perf_counter()
    result = parse(text)
    assert time.perf_counter() - start < 1.0
    assert result.fever
    start = time.perf_counter()
    parse("3" * 100_000)
    parse("发" * 100_000)
    parse("😂" * 100_000)
    assert time.perf_counter() - start < 2.0
