"""Registration of unknown senders: binding to roster households only, first reports kept."""

from __future__ import annotations

from datetime import timedelta

import pytest_asyncio
from sqlalchemy import func, select

from bot.state import RedisState
from handlers import people, registration, texts
from storage.models import Building, CheckIn, Escalation, Grid, Household, Resident
from tests.testbot import clock_state, make_bot


@pytest_asyncio.fixture
async def bot(sqlite_db, clock):
    # TTLs of the conversation state run on the test clock
    return await make_bot(sqlite_db, clock, state=clock_state(clock))


async def _resident(tb, sender, *, confirm: bool = True):
    """The resident the sender is bound to — after the grid worker confirms a waiting claim, as a
    worker would after a call (nobody becomes a resident by saying so)."""
    async with tb.db.session() as s:
        claim = await registration.open_claim(s, "console", sender)
        worker = None
        if claim is not None and confirm:
            workers = await people.grid_workers(s, claim.household.building.grid_id)
            worker, code = workers[0].channel_user_id, f"P{claim.id}"
    if worker is not None:
        await tb.say(worker, f"确认 {code}")
    async with tb.db.session() as s:
        return await s.scalar(select(Resident).where(Resident.channel_user_id == sender))


async def test_unknown_sender_is_asked_then_binds_with_address_and_name(bot):
    await bot.say("newbie", "你好")
    assert "楼号-单元-房号" in bot.last_to("newbie")
    await bot.say("newbie", "3-2-601 李明")
    assert await _resident(bot, "newbie", confirm=False) is None  # a claim, until someone confirms it
    assert "待确认登记" in bot.last_to("zhangwei") and "李明" in bot.last_to("zhangwei")
    r = await _resident(bot, "newbie")
    assert r is not None and r.name == "李明" and r.category == "常住" and r.bound_at is not None
    assert r.household_id == bot.seed.ids["h:3-2-601"]
    assert "登记成功" in bot.last_to("newbie")
    assert "已确认登记" in bot.last_to("zhangwei")


async def test_roster_resident_without_chat_id_is_bound_not_duplicated(bot):
    await bot.say("liu-wx", "3-2-502 刘大爷", chat="g3")
    r = await _resident(bot, "liu-wx")
    assert r.id == bot.seed.ids["liudaye"]


async def test_group_binding_needs_the_groups_building(bot):
    await bot.say("x1", "7-1-201 赵小", chat="g3")
    assert await _resident(bot, "x1") is None
    assert "3号楼" in bot.last_to("x1")


async def test_address_not_in_roster_does_not_bind(bot):
    await bot.say("x2", "3-2-999 张三")
    assert await _resident(bot, "x2") is None
    assert "3-2-999" in bot.last_to("x2")


async def test_ambiguous_building_number_asks_for_the_community(bot):
    await bot.say("x3", "3-2-501 张三")
    assert await _resident(bot, "x3") is None
    assert "阳光社区" in bot.last_to("x3") and "幸福社区" in bot.last_to("x3")
    await bot.say("x3", "幸福社区 3-2-501 张三")
    r = await _resident(bot, "x3")
    assert r.household_id == bot.seed.ids["h:j3-2-501"]


async def test_first_checkin_with_address_is_recorded_after_binding(bot):
    await bot.say("x4", "3-2-601 36.6 正常", chat="g3", name="小周")
    r = await _resident(bot, "x4")
    assert r is not None and r.name == "小周"
    async with bot.db.session() as s:
        c = await s.scalar(select(CheckIn))
    assert c is not None and c.household_id == bot.seed.ids["h:3-2-601"] and c.temperature == 36.6


async def test_unknown_sender_fever_in_group_reaches_the_grid_worker(bot):
    await bot.say("x5", "我发烧39度了", chat="g3", name="路人甲")
    alert = bot.last_to("zhangwei")
    assert "未登记" in alert and "3号楼" in alert and "39" in alert and "路人甲" in alert
    assert "住址" in bot.last_to("x5")
    assert bot.to_chat("g3") == ["已收到，工作人员马上联系您。"]
    assert bot.group_leaks() == []


async def test_unknown_sender_emergency_in_group_reaches_the_whole_chain(bot):
    await bot.say("x6", "快叫120 我爸晕倒了", chat="g3")
    for who in ("zhangwei", "chengang", "liuyi", "sunmin"):
        assert "紧急求助" in bot.last_to(who), who
    assert "120" in bot.last_to("x6")


async def test_private_fever_before_registering_is_escalated_on_binding(bot):
    await bot.say("x7", "我发烧了38.2度")
    assert "住址" in bot.last_to("x7")
    await bot.say("x7", "3-2-601 周七")
    async with bot.db.session() as s:
        esc = await s.scalar(select(Escalation))
    assert esc is not None and esc.temperature == 38.2 and esc.household_id == bot.seed.ids["h:3-2-601"]
    assert "38.2" in bot.to("sunmin")[0]  # before the address: the street duty officer
    assert any("38.2" in t and "3-2-601" in t for t in bot.to("zhangwei"))  # after: the household's worker


# --- two-step registration: the pending choice lives in the state store -----------------------------


async def _escalations(tb):
    """The cases still open (a candidate building's case closes when the sender registers elsewhere)."""
    async with tb.db.session() as s:
        return list((await s.scalars(select(Escalation).where(Escalation.status != "closed"))).all())


async def test_ambiguous_address_lists_numbered_options_and_community_alone_binds(bot):
    await bot.say("x8", "3-2-501 张三")
    ask = bot.last_to("x8")
    assert "1. 阳光社区" in ask and "2. 幸福社区" in ask
    assert await _resident(bot, "x8") is None
    await bot.say("x8", "幸福社区")
    r = await _resident(bot, "x8")
    assert r is not None and r.name == "张三" and r.household_id == bot.seed.ids["h:j3-2-501"]
    assert "登记成功" in bot.last_to("x8")
    assert "张三" in bot.last_to("qianjun")  # 幸福社区's grid worker hears of it
    assert await bot.rt.state.get("reg:pending:console:x8") is None


async def test_ambiguous_address_answered_by_number(bot):
    await bot.say("x9", "3-2-501 张三")
    await bot.say("x9", "1")
    r = await _resident(bot, "x9")
    assert r is not None and r.household_id == bot.seed.ids["h:3-2-501"]


async def test_short_community_name_and_a_name_in_the_answer(bot):
    await bot.say("x10", "3-2-501")
    await bot.say("x10", "阳光 我是李明")
    r = await _resident(bot, "x10")
    assert r is not None and r.household_id == bot.seed.ids["h:3-2-501"] and r.name == "李明"


async def test_an_answer_that_names_no_option_gets_the_list_again(bot):
    await bot.say("x11", "3-2-501 张三")
    await bot.say("x11", "3号")
    assert await _resident(bot, "x11") is None
    assert "1. 阳光社区" in bot.last_to("x11")
    await bot.say("x11", "3")  # no option 3
    assert await _resident(bot, "x11") is None
    await bot.say("x11", "2")
    assert (await _resident(bot, "x11")).household_id == bot.seed.ids["h:j3-2-501"]


async def test_pending_choice_expires(bot):
    await bot.say("x12", "3-2-501 张三")
    bot.clock.advance(timedelta(seconds=registration.PENDING_TTL_S - 60))
    assert await bot.rt.state.get("reg:pending:console:x12") is not None
    bot.clock.advance(timedelta(seconds=120))
    await bot.say("x12", "1")
    assert await _resident(bot, "x12") is None
    assert bot.last_to("x12") == texts.REG_ASK


async def test_a_new_address_restarts_the_registration(bot):
    await bot.say("x13", "3-2-501 张三")
    await bot.say("x13", "3-2-601 李四")
    r = await _resident(bot, "x13")
    assert r is not None and r.household_id == bot.seed.ids["h:3-2-601"] and r.name == "李四"
    assert await bot.rt.state.get("reg:pending:console:x13") is None


async def test_fever_before_registering_is_escalated_once_after_two_step_binding(bot):
    await bot.say("x14", "我发烧了38.2度")
    await bot.say("x14", "3-2-501 周七")
    [before] = await _escalations(bot)  # at once, to the street duty officer: no address yet
    assert before.household_id is None and "38.2" in bot.last_to("sunmin")
    await bot.say("x14", "阳光社区")
    esc = await _escalations(bot)
    assert len(esc) == 1 and esc[0].temperature == 38.2 and esc[0].household_id == bot.seed.ids["h:3-2-501"]
    assert sum("38.2" in t for t in bot.to("zhangwei")) == 1
    await bot.say("x14", "36.5 正常")  # bound now: an ordinary check-in, no second escalation
    assert len(await _escalations(bot)) == 1


async def test_fever_while_the_choice_is_pending_is_kept_and_escalated_once(bot):
    await bot.say("x15", "3-2-501 周七")
    await bot.say("x15", "发烧38.6度，咳嗽")
    assert len(await _escalations(bot)) == 2  # one on each candidate building, at once
    assert "1. 阳光社区" in bot.last_to("x15")
    await bot.say("x15", "36.6 正常")  # a plain check-in does not replace the fever
    await bot.say("x15", "1")
    esc = await _escalations(bot)
    assert len(esc) == 1 and esc[0].temperature == 38.6 and esc[0].household_id == bot.seed.ids["h:3-2-501"]


async def test_fever_in_the_address_message_survives_a_restart(bot):
    await bot.say("x16", "3-2-501 周七 发烧38.4")
    await bot.say("x16", "3-2-502 周七")  # wrong one first... then the roster resident 刘大爷's flat
    esc = await _escalations(bot)
    assert len(esc) == 1 and esc[0].temperature == 38.4 and esc[0].household_id == bot.seed.ids["h:3-2-502"]


async def test_two_buildings_with_one_number_in_one_community_asked_by_full_name(bot):
    async with bot.db.session() as s:
        g1, g2 = await s.get(Grid, bot.seed.ids["g1"]), await s.get(Grid, bot.seed.ids["g2"])
        east = Building(name="东苑9号楼", number="9", grid=g1, chat_id="g9e", channel="console")
        west = Building(name="西苑9号楼", number="9", grid=g2, chat_id="g9w", channel="console")
        he, hw = Household(building=east, unit="1", room="101"), Household(building=west, unit="1", room="101")
        s.add_all([east, west, he, hw])
        await s.flush()
        west_id = hw.id
    await bot.say("x17", "9-1-101 李明")
    ask = bot.last_to("x17")
    assert "1. 东苑9号楼" in ask and "2. 西苑9号楼" in ask and "社区" not in ask
    await bot.say("x17", "9号楼")  # names both: asked again
    assert await _resident(bot, "x17") is None
    await bot.say("x17", "西苑9号楼")
    r = await _resident(bot, "x17")
    assert r is not None and r.household_id == west_id and r.name == "李明"
    assert "李明" in bot.last_to("zhaoqiang")


async def test_unknown_chatter_in_a_group_is_asked_once_privately(bot):
    for text in ("大家好", "今天天气不错", "谢谢志愿者"):
        await bot.say("x18", text, chat="g3")
    assert bot.to("x18") == [texts.REG_ASK]
    assert "3-2-501 王芳" in texts.REG_ASK and "楼号-单元-房号" in texts.REG_ASK
    assert bot.to_chat("g3") == []


async def test_unknown_asked_in_private_is_not_asked_again_in_the_group(bot):
    await bot.say("x19", "你好")
    await bot.say("x19", "大家好", chat="g3")
    assert bot.to("x19") == [texts.REG_ASK]


async def test_pending_choice_in_redis(sqlite_db, clock, redis_client):
    prefix = redis_client.test_prefix
    tb = await make_bot(sqlite_db, clock, state=RedisState(redis_client, prefix=prefix))
    await tb.say("x20", "3-2-501 张三")
    key = prefix + "reg:pending:console:x20"
    ttl_ms = await redis_client.pttl(key)
    assert 0 < ttl_ms <= registration.PENDING_TTL_S * 1000
    await tb.say("x20", "2")
    r = await _resident(tb, "x20")
    assert r is not None and r.household_id == tb.seed.ids["h:j3-2-501"]
    assert await redis_client.exists(key) == 0
    async with tb.db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Resident).where(Resident.name == "张三")) == 1


async def test_fever_in_the_ambiguous_address_message_goes_to_the_chosen_household(bot):
    await bot.say("x21", "3-2-501 周七 发烧38.3")
    await bot.say("x21", "幸福社区")
    esc = await _escalations(bot)
    assert len(esc) == 1 and esc[0].household_id == bot.seed.ids["h:j3-2-501"]
    assert any("38.3" in t for t in bot.to("qianjun"))


async def test_fever_while_the_choice_is_pending_reaches_every_candidate_grid_worker_at_once(bot):
    # 3-2-501 is in 阳光社区 (一网格, 张伟) and in 幸福社区 (三网格, 钱军): the resident may never pick one.
    await bot.say("x17", "3-2-501 周七")
    await bot.say("x17", "发烧38.6度")
    for worker in ("zhangwei", "qianjun"):
        assert "38.6" in bot.last_to(worker) and "未登记" in bot.last_to(worker)
    assert "已转告" in bot.to("x17")[-2]


async def test_private_fever_without_any_address_goes_to_the_street_duty_officer_and_says_so(bot):
    await bot.say("x18", "我发烧了38.3度")
    reply = bot.last_to("x18")
    assert "街道值班" in reply and "住址" in reply and "120" in reply
    alert = bot.last_to("sunmin")
    assert "E1" in alert and "住址未知" in alert and "38.3" in alert
    [esc] = await _escalations(bot)
    assert esc.household_id is None and esc.grid_id is None and esc.level == 2
