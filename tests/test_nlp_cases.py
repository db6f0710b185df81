"""Table-driven parser cases: plain functions, no event loop."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest

import nlp
from nlp import ParseResult, parse

TEMPERATURES = [
    ("36.5", 36.5),
    ("体温36.5℃", 36.5),
    ("36.5°C 正常", 36.5),
    ("36度5", 36.5),
    ("36点5", 36.5),
    ("三十六度五", 36.5),
    ("三十七点五", 37.5),
    ("三十八度", 38.0),
    ("四十度", 40.0),
    ("三十六度半", 36.5),
    ("３６．６", 36.6),
    ("36。5 正常", 36.5),
    ("39度多", 39.0),
    ("烧到38了", 38.0),
    ("体温37", 37.0),
    ("36.5c", 36.5),
    ("36.7°", 36.7),
    ("36.4/36.6/36.5", 36.6),
    ("体温在36.2-36.7之间", 36.7),
    ("老头子量了三回，37.2，37.6，37.9", 37.9),
    ("俺家小的38度2 大的36.7", 38.2),
]


@pytest.mark.parametrize(("text", "value"), TEMPERATURES)
def test_temperature_notations(text: str, value: float) -> None:
    assert parse(text).temperature == pytest.approx(value)


NOT_BODY = [
    "3-2-501 报平安",
    "37号楼1单元402 平安",
    "俺爷爷90岁了",
    "俺家孩子今年36了",
    "菜钱一共37块5",
    "菜钱36.5元转你了",
    "2月12日 报平安",
    "8:36 报平安",
    "电话13837381234",
    "今天最高气温38℃",
    "外面零下2度",
    "水温40度正好",
    "40度的热水洗个澡",
    "体温≥37.3℃请及时上报",
    "37个同学都在线",
    "俺爹78 俺娘76 都挺好",
]


@pytest.mark.parametrize("text", NOT_BODY)
def test_other_numbers_are_not_body_temperatures(text: str) -> None:
    result = parse(text)
    assert result.temperature is None
    assert not result.fever


FEVER = [
    ("发烧了", True),
    ("低烧", True),
    ("37.3", True),
    ("37.2", False),
    ("不发烧", False),
    ("没发烧，36.6", False),
    ("无发热", False),
    ("发热：否", False),
    ("发热：是", True),
    ("发烧倒是没有", False),
    ("退烧了，36.7", False),
    ("不烧了 还是头疼", False),
    ("烧退了点，现在还37.5", True),
    ("前天烧到38度5，今天不烧了", False),
    ("吃了退烧药也不退 39.6", True),
    ("烧还没退", True),
    ("發燒38度", True),
    ("发骚了38度", True),
    ("孩子发稍37.9", True),
    ("俺家那口子是钓鱼发烧友", False),
    ("咱这片的发热门诊是哪个医院？", False),
    ("暖气片不发热了，能找人来修吗", False),
    ("差点把锅烧了", False),
    ("发烧了怎么办？去哪个医院", False),
    ("听说隔壁小区有人发烧", False),
    ("如果家里有人发烧了，先找谁？", False),
    ("多少度算发烧啊？", False),
    ("老头子烧了两天了", True),
    ("摸着挺烫", True),
]


@pytest.mark.parametrize(("text", "fever"), FEVER)
def test_fever_words_negation_and_resolution(text: str, fever: bool) -> None:
    assert parse(text).fever is fever


SYMPTOMS = [
    ("没咳嗽，就是拉肚子", {"diarrhea"}),
    ("咳嗽：无\n乏力：有", {"fatigue"}),
    ("无发热、咳嗽、呼吸困难等症状", set()),
    ("没有咳嗽发烧啥的", set()),
    ("嗓子有点疼", {"sore_throat"}),
    ("头一直疼", {"headache"}),
    ("咳速了两天", {"cough"}),
    ("喉嚨痛", {"sore_throat"}),
    ("尝不出味儿，浑身没劲", {"taste_smell", "fatigue"}),
    ("有点胸闷", {"breathing"}),
    ("窜稀", {"diarrhea"}),
    ("淌清鼻涕", {"runny_nose"}),
    ("浑身酸疼 打寒战", {"muscle_ache", "chills"}),
    ("吃啥吐啥", {"vomiting"}),
    ("吐槽一下快递太慢", set()),
    ("这网课真让人头疼", set()),
    ("咳，天天在家待着", set()),
]


@pytest.mark.parametrize(("text", "symptoms"), SYMPTOMS)
def test_symptoms(text: str, symptoms: set[str]) -> None:
    assert set(parse(text).symptoms) == symptoms


CHECKIN = [
    ("报平安", "safe"),
    ("全家都好", "safe"),
    ("36度8", "safe"),
    ("3-2-501 36.5 正常", "safe"),
    ("抱平安🙏🙏", "safe"),
    ("全家正常[抱拳]", "safe"),
    ("俺家都杠赛来", "safe"),
    ("我妈今天低烧37.5，有点咳嗽", "abnormal"),
    ("老伴咳嗽好多了", "abnormal"),
    ("健康码在哪申请啊", None),
    ("好的，收到，谢谢", None),
    ("今天还用报平安吗？", None),
    ("【通知】请各位居民每天中午12点前在群里报平安", None),
    ("听说3号楼有一家人都在发烧，是真的吗？", None),
    ("别传了，那个发烧的大爷查过了，不是新冠", None),
    ("替楼下王大娘报个平安，她体温36.3", "safe"),
    ("帮隔壁张奶奶报下 她低烧37.5", "abnormal"),
    ("", None),
    ("   ", None),
]


@pytest.mark.parametrize(("text", "checkin"), CHECKIN)
def test_checkin(text: str, checkin: str | None) -> None:
    assert parse(text).checkin == checkin


REQUESTS = [
    ("麻烦帮忙代购点米面油", "groceries", ["米面油"]),
    ("能帮忙买盒布洛芬吗", "medicine", ["布洛芬"]),
    ("垃圾两天没人收了", "garbage", ["垃圾"]),
    ("楼道灯坏了 麻烦找人修一下", "other", ["灯", "坏了"]),
    ("能有人陪俺说说话吗", "other", ["说说话"]),
    ("隔离期间能下楼扔垃圾吗？", None, []),
    ("需要买菜的居民请在群里接龙", None, []),
    ("谢谢网格员送的菜", None, []),
    ("不用买菜了，家里还有", None, []),
    ("快叫救护车！", None, []),
]


@pytest.mark.parametrize(("text", "service", "items"), REQUESTS)
def test_requests_and_items(text: str, service: str | None, items: list[str]) -> None:
    result = parse(text)
    assert result.request == service
    assert list(result.items) == items


EMERGENCY = [
    ("老伴突然喘不上气", True),
    ("俺娘晕倒了，叫不醒", True),
    ("胸口疼得直冒汗", True),
    ("孩子抽搐了", True),
    ("救命", True),
    ("快叫120", True),
    ("電梯裡有人昏過去了", True),
    ("孩子高烧39.5", False),
    ("有点胸闷", False),
    ("发烧38.2，没有抽搐", False),
    ("笑得俺喘不上气了哈哈哈哈", False),
    ("吓得俺差点晕倒，白菜都5块一斤了", False),
    ("救命啊，菜太贵了", False),
    ("再不开学俺要晕倒了😂", False),
    ("体温超过37.3度或出现呼吸困难等症状立即报告", False),
    ("万一半夜喘不上气怎么办", False),
]


@pytest.mark.parametrize(("text", "emergency"), EMERGENCY)
def test_emergency(text: str, emergency: bool) -> None:
    assert parse(text).emergency is emergency


ADDRESSES = [
    ("3-2-501 36.5", "3-2-501"),
    ("3号楼2单元501 平安", "3-2-501"),
    ("3栋2单元501室 平安", "3-2-501"),
    ("３－２－５０１ 平安", "3-2-501"),
    ("21号楼3-401 一家三口", "21-3-401"),
    ("3单元402 体温正常", "-3-402"),
    ("5号院3号 平安", "5--3"),
    ("楼号：15号楼\n单元：3单元\n门牌：502", "15-3-502"),
    ("全家平安", None),
    ("电话0531-86012345", None),
]


@pytest.mark.parametrize(("text", "address"), ADDRESSES)
def test_address(text: str, address: str | None) -> None:
    assert parse(text).address == address


CONCERNS = [
    ("俺发烧了", "self"),
    ("37.5", "self"),
    ("孩子咳嗽", "family"),
    ("老伴36.5 挺好", "family"),
    ("替对门刘大爷报一下，他发烧了", "neighbour"),
    ("楼下有个老人晕在门口了", "other"),
    ("麻烦帮忙买点菜", None),
]


@pytest.mark.parametrize(("text", "concerns"), CONCERNS)
def test_concerns(text: str, concerns: str | None) -> None:
    assert parse(text).concerns == concerns


@pytest.mark.parametrize("text", ["37", "365", "36", " 37 "])
def test_lone_numbers_are_unclear(text: str) -> None:
    result = parse(text)
    assert result.unclear
    assert result.checkin is None
    assert result.temperature is None


@pytest.mark.parametrize("text", ["36.5 正常", "全家平安", "麻烦帮忙买菜"])
def test_clear_messages_are_not_unclear(text: str) -> None:
    assert not parse(text).unclear


@pytest.mark.parametrize(
    ("text", "correction"),
    [("刚才写错了，是36.5", True), ("更正：体温37.1，不是38.1", True), ("36.5 正常", False)],
)
def test_correction(text: str, correction: bool) -> None:
    assert parse(text).correction is correction


def test_correction_drops_the_denied_figure() -> None:
    result = parse("更正：体温37.1，不是38.1")
    assert result.temperature == pytest.approx(37.1)
    assert not result.fever


def test_persons_per_reading() -> None:
    persons = parse("老人36.6 孩子37.4").to_dict()["persons"]
    assert [(p["who"], p["temperature"], p["fever"]) for p in persons] == [
        ("老人", 36.6, False),
        ("孩子", 37.4, True),
    ]


def test_persons_with_symptoms() -> None:
    persons = {p["who"]: p for p in parse("我不发烧，孩子有点咳嗽").to_dict()["persons"]}
    assert persons["孩子"]["symptoms"] == ["cough"]


def test_fever_threshold_is_configurable() -> None:
    assert parse("37.3").fever
    assert not parse("37.2").fever
    assert parse("37.3").checkin == "abnormal"
    assert not parse("37.3", fever_at=37.5).fever
    assert parse("37.5", fever_at=37.5).fever
    assert parse("37.0", fever_at=37.0).fever


def test_fever_symptom_agrees_with_fever() -> None:
    for text in ("发烧了", "37.8", "不发烧", "36.5"):
        result = parse(text)
        assert ("fever" in result.symptoms) == result.fever


def test_result_is_frozen_and_serialisable() -> None:
    result = parse("3-2-501 老人36.6 孩子37.4 麻烦买点菜")
    assert isinstance(result, ParseResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.fever = False  # type: ignore[misc]
    data = result.to_dict()
    assert set(data) >= {
        "checkin", "fever", "temperature", "symptoms", "request", "emergency",
        "concerns", "address", "items", "unclear", "persons", "correction",
    }
    assert json.loads(json.dumps(data, ensure_ascii=False)) == data


def test_private_tokenizer_leaves_global_jieba_alone() -> None:
    import jieba

    from nlp.segment import warm_up

    assert warm_up() is not jieba.dt
    assert warm_up() is warm_up()
    assert logging.getLogger("jieba").level >= logging.WARNING
    # Our domain phrase is one token for us; the global dictionary has no such entry.
    assert "喘不上气" in nlp.segment.cut("老伴喘不上气")
    assert "喘不上气" not in jieba.dt.FREQ or jieba.dt.FREQ.get("喘不上气", 0) < 200_000


def test_non_string_input_does_not_raise() -> None:
    assert parse(None).checkin is None  # type: ignore[arg-type]
    assert parse(12345).checkin is None  # type: ignore[arg-type]
