"""The failure classes of the fresh blind set, each with phrasings of its own
(none of them a message of any labelled set): what a rule reads, and what it
must leave alone."""

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


# --- self-harm: an emergency, not a symptom of the body ------------------------------------------


@pytest.mark.parametrize("text", ["我不想活了", "他说要跳楼", "老伴刚吞了一把安眠药", "儿子喝了农药", "她吃了一整盒降压药"])
def test_self_harm_is_an_emergency_not_a_checkin(text: str) -> None:
    result = parse(text)
    assert result.emergency and result.checkin is None and result.symptoms == ()


@pytest.mark.parametrize("text", ["吃了一片布洛芬", "喝了一瓶水", "帮我买一整瓶酒精"])
def test_ordinary_pills_and_bottles_are_not_overdoses(text: str) -> None:
    assert not parse(text).emergency


def test_a_threat_survives_hearsay() -> None:
    (clause,) = [c for c in _clauses("听说那个人说要割腕") if any(t.word == "割腕" for t in c.tokens)]
    assert exclusions.threatened_harm(clause)
    assert parse("群里说5号楼那个大哥要跳楼").emergency
    assert not parse("听说去年有人跳楼").emergency


# --- emergencies said as what happened -------------------------------------------------------------


@pytest.mark.parametrize("text", ["老伴喊了半天都不答应", "我爸突然一下子栽倒了", "孩子怎么推都不醒"])
def test_composed_acts(text: str) -> None:
    assert parse(text).emergency


@pytest.mark.parametrize("text", ["杯子突然倒了", "门口的树突然倒了", "他不答应帮忙"])
def test_acts_that_are_not_emergencies(text: str) -> None:
    assert not parse(text).emergency


def test_pain_carried_to_the_next_clause() -> None:
    assert parse("我心口像被人踩着，疼得说不了话").emergency
    assert parse("胸口压着，疼得厉害").emergency
    assert not parse("胸口有点闷，疼倒是不疼").emergency


# --- named exclusions --------------------------------------------------------------------------------


def test_reached_later() -> None:
    text = "对门大妈敲门没人应，后来打电话说是在睡觉"
    tok = next(t for t in _tokens(text) if t.word == "敲门没人应")
    assert exclusions.reached_later(tok, normalize(text).text)
    assert not parse(text).emergency
    assert parse("对门大妈敲门没人应，电话也不接").emergency


@pytest.mark.parametrize(("text", "cooped"), [
    ("宅在家里憋得慌", True),
    ("隔离十几天了，闷得慌", True),
    ("胸口憋得慌，在家躺着", False),
    ("憋得慌，喘不上气", False),
])
def test_cooped_up(text: str, cooped: bool) -> None:
    assert exclusions.cooped_up(_tokens(text)) is cooped


def test_cooped_up_through_parse() -> None:
    assert parse("宅在家里憋得慌").checkin is None
    assert "breathing" in parse("胸口憋得慌，在家躺着").symptoms


@pytest.mark.parametrize(("text", "rule"), [
    ("多少度算低烧？37.2算不算", True),
    ("38度算高烧吗", True),
    ("孩子37.5算发烧吗", False),
    ("今天37.5算吗", False),
])
def test_rule_question(text: str, rule: bool) -> None:
    result = parse(text)
    assert (result.temperature is None) is rule


@pytest.mark.parametrize("text", ["看见楼下停了辆救护车", "刚才听到救护车的声音"])
def test_seen_not_called(text: str) -> None:
    assert not parse(text).emergency


def test_a_call_for_an_ambulance_stays_one() -> None:
    assert parse("快叫救护车").emergency and parse("看见俺爹倒了，快叫救护车").emergency


@pytest.mark.parametrize("text", ["看了部电视剧，女主发高烧晕倒", "电影的主角抽搐了"])
def test_a_screens_characters(text: str) -> None:
    result = parse(text)
    assert not result.fever and not result.emergency


def test_a_real_viewer_is_real() -> None:
    assert parse("孩子看动画片的时候突然抽搐了").emergency


# --- who is ill: things, pets, the unnamed pinned down ---------------------------------------------


@pytest.mark.parametrize("text", ["电热毯发烫了", "暖气片不发热了", "空调挺好的"])
def test_things_run_hot_or_work(text: str) -> None:
    result = parse(text)
    assert not result.fever and result.checkin is None


@pytest.mark.parametrize("text", ["我家猫咪好像发烧了", "俺家狗子抽搐了", "我家仓鼠不吃东西还发热"])
def test_a_pet_after_ones_own_is_the_pet(text: str) -> None:
    result = parse(text)
    assert not result.fever and result.checkin is None


def test_a_household_address_pins_down_somebody() -> None:
    result = parse("6号楼有一户发烧：2单元301，体温38.1")
    assert result.fever and result.temperature == 38.1 and result.checkin == "abnormal"
    assert not parse("6号楼有人发烧了").fever  # a building alone pins nobody down


def test_a_demonstrative_with_an_address() -> None:
    result = parse("7号楼的那户，三口人体温36.4、36.6、36.5，都正常")
    assert result.checkin == "safe" and result.temperature == 36.6


def test_a_named_neighbour_at_an_address_in_an_emergency_is_reported_on() -> None:
    assert parse("楼长：2-1-301的周大爷摔倒起不来了，已叫120").checkin == "abnormal"
    assert parse("隔壁大爷好像不行了").checkin is None  # a neighbour not reported for


# --- tallies, products, dishes, senses, recovery ---------------------------------------------------


@pytest.mark.parametrize("text", ["8号楼今日无发热人员", "发热人员0人，咳嗽0人，乏力0人", "楼里暂无发热户"])
def test_a_tally_of_nobody_is_safe(text: str) -> None:
    result = parse(text)
    assert result.checkin == "safe" and not result.fever and result.symptoms == ()


def test_a_category_is_nobodys_fever() -> None:
    result = parse("昨天接触过发热病人")
    assert not result.fever


def test_a_symptom_before_a_denied_fever_stays() -> None:
    assert parse("老伴拉肚子 无发热").symptoms == ("diarrhea",)


@pytest.mark.parametrize("text", ["想买发热鞋垫", "发热内衣哪里有卖", "今天烧了一锅排骨"])
def test_products_and_dishes(text: str) -> None:
    assert not parse(text).fever


def test_burning_still_a_fever() -> None:
    assert parse("烧了一天了，饭也吃不下").fever


@pytest.mark.parametrize("text", ["味觉有点不灵了", "这两天嗅觉减退"])
def test_failing_senses(text: str) -> None:
    assert parse(text).symptoms == ("taste_smell",)


def test_a_poor_taste_in_food_is_no_symptom() -> None:
    assert parse("这菜味道差").symptoms == ()


@pytest.mark.parametrize(("text", "checkin"), [
    ("前几天低烧，现在痊愈了", "safe"),
    ("上周发热，已经好了，体温正常", "safe"),
    ("退烧了，今天36.6", "abnormal"),  # getting better is still abnormal (CONTRACT.md)
    ("已经好了，就是还有点咳嗽", "abnormal"),
])
def test_recovered_is_safe(text: str, checkin: str) -> None:
    assert parse(text).checkin == checkin


# --- sound-alikes never break a word ---------------------------------------------------------------


def test_a_lexicon_word_is_not_read_as_a_sound_alike() -> None:
    assert normalize("嗓子发干").text == "嗓子发干"
    assert parse("嗓子发干，有点疼").symptoms == ("sore_throat",)
    assert not parse("嗓子发干").emergency


# --- requests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "asked"), [
    ("电费能帮忙代缴吗", "other"),
    ("降压药该续了", "medicine"),
    ("家里垃圾麻烦上门收一下", "garbage"),
    ("已经联系医生上门了", None),
])
def test_requests(text: str, asked: str | None) -> None:
    assert parse(text).request == asked


# --- a rumour's reach ends where the sender turns to their own --------------------------------------


def test_rumour_reach_ends_at_ones_own() -> None:
    result = parse("有人说5号楼有人发烧，俺家都挺好")
    assert result.checkin == "safe" and not result.fever
