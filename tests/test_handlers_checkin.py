"""Check-ins through the real pipeline: safe, abnormal, neighbours, corrections, several people, slots."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest_asyncio
from sqlalchemy import func, select

from storage.models import CheckIn, Escalation, Reminder
from tests.testbot import make_bot


@pytest_asyncio.fixture
async def bot(sqlite_db, clock):
    return await make_bot(sqlite_db, clock)


@pytest_asyncio.fixture
async def any_bot(db, clock):
    """SQLite and the real PostgreSQL."""
    return await make_bot(db, clock)


async def _checkins(tb, **where):
    async with tb.db.session() as s:
        q = select(CheckIn)
        for k, v in where.items():
            q = q.where(getattr(CheckIn, k) == v)
        return list((await s.scalars(q.order_by(CheckIn.id))).all())


async def test_safe_report_in_group_is_recorded_and_confirmed_privately_once(any_bot):
    tb = any_bot
    rows = await tb.say("wangfang", "3-2-501 36.5 正常", chat="g3")
    got = await _checkins(tb, household_id=tb.seed.ids["h:3-2-501"])
    assert len(got) == 1 and got[0].status == "safe" and got[0].temperature == 36.5
    assert got[0].date == date(2026, 2, 10) and got[0].slot == "day"
    assert [r.to_chat for r in rows] == [None], "a safe report says nothing in the group"
    assert "已记录" in tb.last_to("wangfang") and "36.5" in tb.last_to("wangfang")
    # the same report again: a quiet update, no second confirmation
    again = await tb.say("wangfang", "3-2-501 36.5 正常", chat="g3")
    assert again == []
    assert len(await _checkins(tb)) == 1


async def test_correction_replaces_the_days_value(bot):
    await bot.say("wangfang", "36.9")
    await bot.say("wangfang", "刚才写错了，是36.5")
    got = await _checkins(bot)
    assert len(got) == 1 and got[0].temperature == 36.5
    assert "已更正" in bot.last_to("wangfang")


async def test_report_for_a_neighbour_counts_for_that_household(bot):
    await bot.say("wangfang", "替3-2-502刘大爷报平安", chat="g3")
    got = await _checkins(bot)
    assert len(got) == 1
    assert got[0].household_id == bot.seed.ids["h:3-2-502"]
    assert got[0].reporter_id == bot.seed.ids["wangfang"]
    assert "3-2-502" in bot.last_to("wangfang")


async def test_unknown_neighbour_address_is_not_recorded(bot):
    await bot.say("wangfang", "3-2-509 平安")
    assert await _checkins(bot) == []
    assert "3-2-509" in bot.last_to("wangfang")


async def test_several_people_in_one_message_are_separate_rows_and_fever_escalates(bot):
    await bot.say("wangfang", "老人36.6 孩子37.4")
    got = {c.person: c for c in await _checkins(bot)}
    assert set(got) == {"老人", "孩子"}
    assert got["孩子"].status == "abnormal" and got["孩子"].fever
    assert got["老人"].status == "safe"
    text = bot.last_to("zhangwei")
    assert "37.4" in text and "孩子" in text and "3-2-501" in text


async def test_quarantine_reports_per_slot_and_answer_the_reminder(bot):
    async with bot.db.session() as s:
        s.add(Reminder(resident_id=bot.seed.ids["chenjing"], date=date(2026, 2, 10), slot="am",
                       due_at=bot.clock.now(), sent_at=bot.clock.now()))
    bot.at(8, 30)
    await bot.say("chenjing", "36.6")
    bot.at(14, 30)
    await bot.say("chenjing", "36.7 正常")
    got = await _checkins(bot)
    assert [(c.slot, c.temperature, c.person) for c in got] == [
        ("am", 36.6, f"r{bot.seed.ids['chenjing']}"), ("pm", 36.7, f"r{bot.seed.ids['chenjing']}")]
    async with bot.db.session() as s:
        rem = await s.scalar(select(Reminder))
        assert rem.answered_at is not None
    assert "下午" in bot.last_to("chenjing")


async def test_unclear_number_asks_instead_of_guessing(bot):
    await bot.say("wangfang", "365")
    assert await _checkins(bot) == []
    assert "36.5" in bot.last_to("wangfang") and "吗" in bot.last_to("wangfang")


async def test_group_chatter_gets_no_reply(bot):
    rows = await bot.say("wangfang", "今天天气不错", chat="g3")
    assert rows == []
    rows = await bot.say("zhangwei", "大家注意防护", chat="g3")  # staff in a group: silence
    assert rows == []


async def test_two_checkins_at_the_same_instant_make_one_row(any_bot):
    tb = any_bot
    a = tb.inbound("wangfang", "36.5 正常")
    b = tb.inbound("wangfang", "平安 36.5")
    await asyncio.gather(tb.send(a), tb.send(b))
    assert len(await _checkins(tb)) == 1


async def test_two_people_same_household_same_instant_no_exception(bot):
    """Different senders do not share a lock: the unique key and the savepoint settle it."""
    a = bot.inbound("wangfang", "全家都好")
    b = bot.inbound("wangfang", "全家平安")
    await asyncio.gather(bot.send(a), bot.send(b))
    async with bot.db.session() as s:
        assert await s.scalar(select(func.count(CheckIn.id))) == 1
        assert await s.scalar(select(func.count(Escalation.id))) == 0


async def test_no_health_detail_ever_reaches_a_group(bot):
    """Every group message of a busy mixed scenario is scanned for temperatures, symptoms, rooms, names."""
    import pytest

    from handlers.common import PrivacyError, group_message

    script = [
        ("wangfang", "3-2-501 36.5 正常", "g3", "console"),
        ("wangfang", "我发烧了38.5度，还咳嗽", "g3", "console"),
        ("wangma", "头疼 37.9度 嗓子疼", "g3", "aibot"),
        ("laozhao", "喘不上气，胸口疼，快叫120", "g5", "console"),
        ("chenjing", "老伴发烧了三十八度五，能帮忙买点布洛芬吗", "g3", "console"),
        ("stranger", "我发烧39度了", "g3", "console"),
        ("zhaoliu", "帮忙买点青菜", "g7", "console"),
        ("wangfang", "365", "g3", "console"),
    ]
    for sender, text, chat, channel in script:
        await bot.say(sender, text, chat=chat, channel=channel, reply_to="https://resp" if channel == "aibot" else None)
    groups = [r for r in bot.sent if r.to_chat]
    assert groups, "the scenario produced group lines to check"
    assert bot.group_leaks() == []
    # the AI-bot resident's details went privately through the WeCom app
    assert any(r.channel == "wecom" and r.to_user == "wangma" and "37.9" in r.text for r in bot.sent)
    with pytest.raises(PrivacyError):
        group_message(None, "3-2-501 王芳 体温38.5℃", chat_id="g3")
