"""Every fever reaches a person: unknown members, reports for others, 接龙 lists, the day's history,
what workers need to act, non-text messages and recalls — through the real pipeline (testbot)."""

from __future__ import annotations

from datetime import timedelta

import pytest_asyncio
from sqlalchemy import select, update

from bot.model import Inbound
from storage.ledger import compute_ledger
from storage.models import CheckIn, Escalation, Resident
from tests.testbot import clock_state, make_bot


@pytest_asyncio.fixture
async def any_bot(db, clock):
    """SQLite and the real PostgreSQL; conversation state on the test's clock."""
    return await make_bot(db, clock, state=clock_state(clock))


async def _escalations(tb, **where):
    async with tb.db.session() as s:
        q = select(Escalation)
        for k, v in where.items():
            q = q.where(getattr(Escalation, k) == v)
        return list((await s.scalars(q.order_by(Escalation.id))).unique().all())


async def _checkins(tb, **where):
    async with tb.db.session() as s:
        q = select(CheckIn)
        for k, v in where.items():
            q = q.where(getattr(CheckIn, k) == v)
        return list((await s.scalars(q.order_by(CheckIn.id))).all())


async def _grid(tb, name: str):
    async with tb.db.session() as s:
        ledger = await compute_ledger(s, tb.clock.now().date(), tb.settings.tz, [name])
    return ledger["grids"][0]


# --- 1. unknown members -----------------------------------------------------------------------------


async def test_unknown_members_fever_is_an_escalation_that_climbs(any_bot):
    tb = any_bot
    await tb.say("x1", "我发烧39度了，浑身疼", chat="g3", name="路人甲")
    [esc] = await _escalations(tb)
    assert esc.household_id is None and esc.building_id == tb.seed.ids["b3"] and esc.level == 0
    alert = tb.last_to("zhangwei")
    assert f"E{esc.id}" in alert and "39" in alert and "路人甲" in alert and "3号楼" in alert
    assert (await _grid(tb, "一网格"))["open_escalations"] == 1
    assert (await _grid(tb, "一网格"))["fevers"] == 1

    tb.clock.advance(timedelta(minutes=15, seconds=1))
    got = await tb.sweep()
    assert {r.to_user for r in got} >= {"chengang", "liuyi"}
    tb.clock.advance(timedelta(minutes=15))
    got = await tb.sweep()
    assert "sunmin" in {r.to_user for r in got}

    await tb.say("zhangwei", f"完成 E{esc.id} 已上门，确认是3-2-601租户")
    assert "处理完毕" in tb.last_to("x1") and "已上门" in tb.last_to("x1")
    assert tb.group_leaks() == []


async def test_unknown_members_fever_moves_to_the_household_when_they_register(any_bot):
    tb = any_bot
    await tb.say("x2", "发烧38.6", chat="g3", name="小周")
    await tb.say("x2", "3-2-601 周七", chat="g3")  # a claim: the fever goes to that household at once
    escs = await _escalations(tb)
    assert len(escs) == 1, "never doubled"
    assert escs[0].household_id == tb.seed.ids["h:3-2-601"] and escs[0].resident_id is None
    claim = tb.last_to("zhangwei")
    code = claim.split("【待确认登记 ")[1].split("】")[0] if "待确认登记" in claim else None
    if code is None:
        code = next(t for t in tb.to("zhangwei") if "待确认登记" in t).split("【待确认登记 ")[1].split("】")[0]
    await tb.say("zhangwei", f"确认 {code}")
    escs = await _escalations(tb)
    assert len(escs) == 1 and escs[0].resident_id is not None


# --- 2. reports for others ---------------------------------------------------------------------------


async def test_leaders_report_reaches_that_households_worker(any_bot):
    tb = any_bot
    # 李娜 is a volunteer on the roster (staff), writing in the building's group
    await tb.say("lina", "楼长报：3号楼2单元502 王某某 今天体温38.2，已告知家属", chat="g3")
    [esc] = await _escalations(tb)
    assert esc.household_id == tb.seed.ids["h:3-2-502"] and esc.kind == "fever"
    alert = tb.last_to("zhangwei")
    assert "3-2-502" in alert and "38.2" in alert and "志愿者李娜代报" in alert
    [c] = await _checkins(tb)
    assert c.household_id == tb.seed.ids["h:3-2-502"] and c.status == "abnormal" and c.source == "proxy"
    assert tb.group_leaks() == []


async def test_a_report_for_a_neighbour_never_makes_the_senders_home_abnormal(any_bot):
    tb = any_bot
    await tb.say("wangfang", "3-2-502 刘大爷 今早37.9，咳嗽", chat="g3")
    rows = await _checkins(tb)
    assert {r.household_id for r in rows} == {tb.seed.ids["h:3-2-502"]}
    [esc] = await _escalations(tb)
    assert esc.household_id == tb.seed.ids["h:3-2-502"] and "3-2-501 王芳代报" in tb.last_to("zhangwei")


async def test_a_person_the_roster_cannot_place_is_escalated_on_the_senders_building(any_bot):
    tb = any_bot
    await tb.say("wangfang", "隔离户李某某 下午37.6", chat="g3")
    [esc] = await _escalations(tb)
    assert esc.household_id is None and esc.building_id == tb.seed.ids["b3"]
    assert "李某某" in tb.last_to("zhangwei")


# --- 3. 接龙 lists ----------------------------------------------------------------------------------------


async def test_jielong_records_each_household_and_a_repost_alerts_once(any_bot):
    tb = any_bot
    first = "#接龙 今日体温\n例：3-2-501 36.5 正常\n1. 3-2-501 王芳 36.5 正常\n2. 3-1-101 陈静 38.1"
    await tb.say("wangfang", first, chat="g3")
    await tb.say("chenjing", first + "\n3. 3-2-601 王妈 36.6 正常", chat="g3")
    households = {c.household_id for c in await _checkins(tb)}
    assert households == {tb.seed.ids[k] for k in ("h:3-2-501", "h:3-1-101", "h:3-2-601")}
    escs = await _escalations(tb)
    assert len(escs) == 1 and escs[0].household_id == tb.seed.ids["h:3-1-101"]
    assert sum("38.1" in t for t in tb.to("zhangwei")) == 1
    g = await _grid(tb, "一网格")
    assert g["reported"] == 3 and g["abnormal"] == 1
    assert tb.group_leaks() == []


async def test_a_list_line_that_names_no_household_is_kept(any_bot):
    tb = any_bot
    await tb.say("wangfang", "接龙\n1. 3-2-501 36.5\n2. 3-9-909 张三 36.6", chat="g3")
    assert "1 行未找到" in tb.last_to("wangfang")
    await tb.say("wangfang", "接龙\n1. 3-2-501 36.5\n2. 3-9-909 张三 36.6", chat="g3")  # re-post: nothing new
    assert len(await _checkins(tb)) == 1


# --- 4. history ---------------------------------------------------------------------------------------------


async def test_a_fever_then_a_normal_reading_stays_a_fever_in_the_days_ledger(any_bot):
    tb = any_bot
    await tb.say("zhaoliu", "我发烧了38.0")
    tb.clock.advance(timedelta(hours=1))
    await tb.say("zhaoliu", "36.5 正常")
    rows = await _checkins(tb)
    assert [r.temperature for r in rows] == [38.0, 36.5]
    g = await _grid(tb, "二网格")
    assert (g["fevers"], g["abnormal"], g["safe"]) == (1, 1, 0)


# --- what workers need to act -------------------------------------------------------------------------


async def test_the_alert_carries_the_households_phone_for_its_own_grid_only(any_bot):
    tb = any_bot
    async with tb.db.session() as s:
        await s.execute(update(Resident).where(Resident.channel_user_id == "chenjing").values(phone="13800001111"))
    await tb.say("chenjing", "我发烧了38.3")
    assert "13800001111" in tb.last_to("zhangwei")
    assert "13800001111" not in tb.last_to("huangyi")  # the team's medic has no grid of their own
    assert all("13800001111" not in t for t in tb.to_chat("g3"))


async def test_staff_report_for_a_household_and_the_todo_list(any_bot):
    tb = any_bot
    await tb.say("zhangwei", "代报 3-2-601 36.6 正常")
    assert "已代报" in tb.last_to("zhangwei")
    [c] = await _checkins(tb)
    assert c.source == "staff" and c.household_id == tb.seed.ids["h:3-2-601"]
    await tb.say("zhangwei", "代报 3-2-502 38.5 咳嗽")
    [esc] = await _escalations(tb)
    assert esc.household_id == tb.seed.ids["h:3-2-502"]
    assert esc.reporter_label == "网格员张伟"
    await tb.say("zhangwei", "待办")
    assert f"E{esc.id}" in tb.last_to("zhangwei")
    await tb.say("zhaoqiang", "代报 3-2-601 36.5 正常")
    assert "不在您负责" in tb.last_to("zhaoqiang")


async def test_a_check_in_in_an_ai_bot_group_is_confirmed_privately(any_bot):
    tb = any_bot
    await tb.send(Inbound(channel="aibot", msg_id="ab1", sender_id="wangma", text="3-2-601 36.5 正常",
                          sent_at=tb.clock.now(), chat_id="g3"))
    mine = [r for r in tb.sent if r.to_user == "wangma"]
    assert mine and mine[-1].channel == "wecom" and "已记录" in mine[-1].text


# --- non-text messages and recalls -------------------------------------------------------------------------


async def test_a_picture_is_answered_once_an_hour_with_a_request_for_words(any_bot):
    tb = any_bot
    for _ in range(2):
        await tb.send(Inbound(channel="console", msg_id=f"img{_}", sender_id="wangfang", text="",
                              sent_at=tb.clock.now(), chat_id="g3", kind="image"))
    assert len([t for t in tb.to("wangfang") if "打字" in t]) == 1
    tb.clock.advance(timedelta(hours=1, minutes=1))
    await tb.send(Inbound(channel="console", msg_id="img9", sender_id="wangfang", text="",
                          sent_at=tb.clock.now(), chat_id="g3", kind="image"))
    assert len([t for t in tb.to("wangfang") if "打字" in t]) == 2


async def test_a_recall_undoes_a_safe_check_in_but_not_an_alert(any_bot):
    tb = any_bot
    await tb.say("wangfang", "36.5 正常", msg_id="m-safe", chat="g3")
    await tb.send(Inbound(channel="console", msg_id="r1", sender_id="wangfang", text="m-safe",
                          sent_at=tb.clock.now(), chat_id="g3", kind="recall"))
    assert await _checkins(tb) == []
    await tb.say("wangfang", "我发烧38.4", msg_id="m-fever", chat="g3")
    await tb.send(Inbound(channel="console", msg_id="r2", sender_id="wangfang", text="m-fever",
                          sent_at=tb.clock.now(), chat_id="g3", kind="recall"))
    [esc] = await _escalations(tb)
    assert esc.status == "open" and "撤回" in tb.last_to("zhangwei")


# --- nobody becomes a resident by saying so ------------------------------------------------------------------


async def _quarantined_qian(tb) -> int:
    from storage.models import Quarantine

    async with tb.db.session() as s:
        r = Resident(household_id=tb.seed.ids["h:3-2-502"], name="钱五", phone="139 1234 5678", category="居家隔离")
        s.add(r)
        await s.flush()
        s.add(Quarantine(resident_id=r.id, start=tb.clock.now().date() - timedelta(days=3), days=14))
        return r.id


async def test_an_impostor_cannot_report_for_a_quarantined_person_and_the_real_one_can(any_bot):
    tb = any_bot
    qian = await _quarantined_qian(tb)
    await tb.say("imp", "3-2-502 钱五", chat="g3")
    told_imp = tb.last_to("imp")
    await tb.say("imp2", "3-2-502 赵大", chat="g3")  # nobody of that name: the same answer
    assert told_imp.replace("钱五", "X") == tb.last_to("imp2").replace("赵大", "X")
    assert "已有" not in told_imp
    await tb.say("imp", "1234")  # wrong digits
    await tb.say("imp", "36.5 正常")
    async with tb.db.session() as s:
        assert (await s.get(Resident, qian)).channel_user_id is None
    [c] = await _checkins(tb)
    assert c.resident_id is None and c.source == "claimed" and c.slot == "day"  # never 钱五's quarantine report

    await tb.say("real-qian", "3-2-502 钱五")
    await tb.say("real-qian", "5678")
    assert "登记成功" in tb.last_to("real-qian")
    await tb.say("real-qian", "36.6 正常")
    async with tb.db.session() as s:
        assert (await s.get(Resident, qian)).channel_user_id == "real-qian"
    mine = await _checkins(tb, resident_id=qian)
    assert len(mine) == 1 and mine[0].slot in ("am", "pm")


async def test_a_claimants_fever_still_escalates_at_once(any_bot):
    tb = any_bot
    await tb.say("imp", "3-2-601 周七 发烧38.8", chat="g3")
    [esc] = await _escalations(tb)
    assert esc.household_id == tb.seed.ids["h:3-2-601"] and esc.resident_id is None
    assert "38.8" in next(t for t in tb.to("zhangwei") if "E" in t and "38.8" in t)


async def test_claims_are_limited_per_sender(any_bot):
    tb = any_bot
    for i in range(8):
        await tb.say("spam", f"3-2-601 张{'一二三四五六七八'[i]}")
    assert "次数已用完" in tb.last_to("spam")
    assert sum("待确认登记" in t for t in tb.to("zhangwei")) == 5


# --- alerts that keep the words that matter (issue 15) ---------------------------------------------------


async def test_an_emergency_summary_keeps_its_words(any_bot):
    tb = any_bot
    await tb.say("wangfang", "救命 我爸晕倒了")
    alert = tb.last_to("zhangwei")
    assert "紧急：救命、晕倒" in alert and "身体不适" not in alert


async def test_a_long_message_is_quoted_up_to_a_limit(any_bot):
    tb = any_bot
    await tb.say("wangfang", "我发烧了38.6度，" + "头疼得厉害，" * 2000)
    alert = tb.last_to("zhangwei")
    assert "…（全文见工作台）" in alert and len(alert) < 800
    [esc] = await _escalations(tb)
    assert len(esc.text) == 2000  # the page keeps what was said, within the column


async def test_a_close_nobody_acknowledged_tells_the_resident_what_was_done_not_a_promise(any_bot):
    tb = any_bot
    await tb.say("wangfang", "我发烧了38.6度")
    [esc] = await _escalations(tb)
    await tb.say("zhangwei", f"完成 E{esc.id} 已送发热门诊")
    told = tb.to("wangfang")[-1]
    assert "已送发热门诊" in told and "会尽快联系" not in told


async def test_refusals_outside_the_grid_have_one_wording(any_bot):
    tb = any_bot
    await tb.say("zhaoqiang", "通知 3号楼 明天停水")
    notice = tb.last_to("zhaoqiang")
    await tb.say("zhaoqiang", "隔离 3-2-501")
    quarantine = tb.last_to("zhaoqiang")
    assert "不在您负责的网格内" in notice and "不在您负责的网格内" in quarantine


async def test_unmatched_list_lines_are_listed_for_the_worker_in_the_evening(any_bot):
    tb = any_bot
    await tb.say("wangfang", "接龙\n1. 3-2-501 36.5\n2. 3-9-909 张三 36.6", chat="g3")
    tb.at(21)
    await tb.tick("ledger")
    ledger = tb.last_to("zhangwei")
    assert "接龙中未能对应住户 1 行" in ledger and "3-9-909" in ledger


async def test_an_uncertain_report_gets_one_question_not_a_silent_guess(any_bot):
    tb = any_bot
    await tb.say("wangfang", "3号楼有个老人发烧了", chat="g3")
    assert "请写明住址" in tb.last_to("wangfang")
    await tb.say("wangfang", "3号楼有个老人发烧了", chat="g3")
    assert sum("请写明住址" in t for t in tb.to("wangfang")) == 1  # asked once a day
    assert tb.to_chat("g3") == []
