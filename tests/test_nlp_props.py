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


# --- the fast paths are the same as the slow ones -------------------------------------------------

_SEG_ALPHABET = "发烧咳嗽 37.5abcAB12-_.%#&+\n\r\t，。！？俺家孩子😂３６\u3000体温正常退了楼单元"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=_SEG_ALPHABET, max_size=30))
def test_cut_is_jiebas_cut_without_hmm(text: str) -> None:
    from nlp.segment import cut, warm_up

    assert cut(text) == warm_up().lcut(text, HMM=False)


def test_cut_on_every_labelled_message() -> None:
    from pathlib import Path

    from nlp.segment import cut, warm_up

    tk = warm_up()
    for path in sorted((Path(__file__).parent / "data").glob("nlp_*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                text = json.loads(line)["text"]
                assert cut(text) == tk.lcut(text, HMM=False), text


def _fix_by_scanning(h, text: str) -> str:
    """The sound-alike replacement as a plain left-to-right scan of every position."""
    out = None
    i = 0
    while i < len(text) - 1:
        if text[i : i + 2] in h._openings:
            for length in h._lengths:
                spelling = text[i : i + length]
                word = h._variants.get(spelling)
                if word is None:
                    continue
                end = i + length
                if spelling in h._holders and h._inside_word(text, i, spelling):
                    continue
                if (i and h._pair_is_word(text[i - 1 : i + 1])) or h._pair_is_word(text[end - 1 : end + 1]):
                    continue
                out = out or list(text)
                out[i:end] = word
                i = end - 1
                break
        i += 1
    return text if out is None else "".join(out)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(["发少", "咳数", "救明", "抽处", "困南", "头发少", "嗓子发干", "了", "我", "38", "，", "呼吸", "发"]), max_size=8))
def test_sound_alike_scan_is_the_plain_scan(pieces: list[str]) -> None:
    from nlp.segment import homophones

    h = homophones()
    text = "".join(pieces)
    assert h.fix(text) == _fix_by_scanning(h, text)
