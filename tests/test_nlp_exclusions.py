"""Each named exclusion on its own, then through ``parse``: what it drops and what it must leave."""

from __future__ import annotations

import pytest

from nlp import exclusions, parse
from nlp.normalize import normalize
from nlp.segment import cut
from nlp.symptoms import Clause, Token, build_clauses


def _clauses(text: str) -> list[Clause]:
    body = normalize(text).text
    return build_clauses(body, cut(body))


def _tokens(text: str) -> list[Token]:
    return [t for c in _clauses(text) for t in c.tokens]


def _token(text: str, word: str) -> Token:
    return next(t for t in _tokens(text) if t.word == word)


# --- negated -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "word", "denied"), [
    ("不发烧", "发烧", True),
    ("无发热、咳嗽", "咳嗽", True),
    ("发热：无", "发热", True),
    ("发烧了", "发烧了", False),
    ("不咳了，但是发烧", "发烧", False),
])
def test_negated(text: str, word: str, denied: bool) -> None:
    assert exclusions.negated(_token(text, word)) is denied


def test_an_unticked_box_reads_as_denied() -> None:
    assert not parse("□发热 ☑咳嗽").fever
    assert parse("□咳嗽 ☑发热").fever
    assert not parse("是否发热：□是 ☑否").fever
    assert parse("是否发热：☑是 □否").fever


# --- figure_of_speech ----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "word", "figure"), [
    ("笑得喘不上气", "喘不上气", True),
    ("差点晕倒", "晕倒", True),
    ("菜价涨得让人喘不过气", "喘不过气", True),
    ("老伴喘不上气", "喘不上气", False),
])
def test_figure_of_speech(text: str, word: str, figure: bool) -> None:
    clause = next(c for c in _clauses(text) if any(t.word == word for t in c.tokens))
    index = next(i for i, t in enumerate(clause.tokens) if t.word == word)
    assert exclusions.figure_of_speech(clause, index) is figure


# --- hypothetical --------------------------------------------------------------------------------


def test_hypothetical_holds_its_clause() -> None:
    (clause,) = _clauses("如果发烧了")
    assert exclusions.hypothetical(clause, sentence_supposes=False)
    (clause,) = _clauses("孩子发烧了")
    assert not exclusions.hypothetical(clause, sentence_supposes=False)


def test_a_supposition_holds_its_sentence_only_when_it_is_a_question() -> None:
    assert exclusions.supposes(_clauses("万一半夜有人发病，救护车能进来吗？"))
    assert not exclusions.supposes(_clauses("如果方便的话，帮买点药，孩子烧到38.5"))
    assert parse("如果方便的话，帮买点药，孩子烧到38.5").fever
    assert not parse("万一半夜有人发病，救护车能进来吗？").emergency


# --- long_ago ------------------------------------------------------------------------------------


def test_long_ago() -> None:
    assert exclusions.long_ago(_tokens("去年老伴"))
    assert not exclusions.long_ago(_tokens("去年得过，今天"))
    assert not exclusions.long_ago(_tokens("老伴"))
    assert not parse("去年老伴心梗住过院").emergency
    assert parse("去年心梗过一次，今天又胸口疼得厉害").emergency


# --- on_screen -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "screen"), [
    ("电视剧里的人晕倒了", True),
    ("新闻上说有人心梗", True),
    ("今天小区搞消防演习", True),
    ("孩子看电视的时候突然抽搐了", False),
])
def test_on_screen(text: str, screen: bool) -> None:
    assert exclusions.on_screen(_tokens(text)) is screen
    if "抽搐" in text or "晕倒" in text or "心梗" in text:
        assert parse(text).emergency is not screen


# --- animal --------------------------------------------------------------------------------------


def test_animal() -> None:
    assert exclusions.animal("pet")
    assert not exclusions.animal("family")
    assert not parse("家里的狗抽搐了").emergency
    assert not parse("猫咪发烧了").fever
    assert parse("孩子抽搐了").emergency


# --- zero_count ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "zero"), [
    ("今日统计：发热0人", True),
    ("发烧人数：0", True),
    ("0人发热", True),
    ("发热1人", False),
    ("发热38.5", False),
])
def test_zero_count(text: str, zero: bool) -> None:
    body = normalize(text).text
    word = "发热" if "发热" in body else "发烧"
    tok = next(t for c in build_clauses(body, cut(body)) for t in c.tokens if t.word == word)
    assert exclusions.zero_count(body, tok) is zero


def test_a_count_of_none_is_no_fever() -> None:
    assert not parse("3号楼今日统计：发热0人，咳嗽0人").fever


# --- asked_not_told ------------------------------------------------------------------------------


def test_asked_not_told() -> None:
    (clause,) = _clauses("救护车能进来吗？")
    tok = next(t for t in clause.tokens if t.word == "救护车")
    assert exclusions.asked_not_told(clause, tok)
    (clause,) = _clauses("能帮忙叫救护车吗？")
    tok = next(t for t in clause.tokens if t.word == "叫救护车" or t.word == "救护车")
    assert not exclusions.asked_not_told(clause, tok)
    assert parse("能帮忙叫救护车吗？").emergency


# --- hearsay -------------------------------------------------------------------------------------


def test_hearsay() -> None:
    assert exclusions.hearsay(0, {0})
    assert not exclusions.hearsay(1, {0})
    assert not parse("听说3号楼有人发烧，真的假的").fever
    assert parse("俺家都正常36.5，听说楼上那家有人发烧了，真的假的").checkin == "safe"


# --- what no exclusion may drop ------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "3号楼王某 38.5",
    "隔离户李某 下午37.6 已告知家属",
    "老李家的孙子今天三十八度一",
    "楼长报：2单元401刘大爷今早37.9",
    "代5号楼刘某某报：体温37.4",
    "网格员：3号楼502李某 上午36.8 下午37.6，通知家属了",
    "志愿者报：6号楼隔离户赵某某 今天体温38.2，有点咳嗽，已通知医生",
])
def test_reports_for_someone_else_are_fevers(text: str) -> None:
    result = parse(text)
    assert result.fever
    assert result.checkin == "abnormal"
    assert result.subjects and result.subjects[0].fever


@pytest.mark.parametrize("text", ["孩子昨天发烧，今天退了", "发烧已经好了", "没有再烧", "家里没有人发烧", "接触过发热人员吗？"])
def test_over_or_nobodys_fevers(text: str) -> None:
    assert not parse(text).fever


def test_somebody_unnamed_at_an_address_is_uncertain() -> None:
    result = parse("3号楼有个老人发烧了")
    assert not result.fever
    assert result.uncertain
    assert not parse("听说3号楼有人发烧，真的假的").uncertain
