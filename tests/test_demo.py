"""`gridbot demo` plays a convincing day; `gridbot chat` talks to the bot against a database."""

from __future__ import annotations

import io
import re

from bot.config import Settings
from bot.demo import Demo, chat
from tests.testbot import community


async def test_demo_day_has_the_story(tmp_path):
    lines: list[str] = []
    demo = Demo(out=lines.append)
    await demo.setup(tmp_path)
    try:
        await demo.play()
    finally:
        await demo.db.dispose()
    text = "\n".join(lines)
    for want in ("每日报平安提醒", "已记录", "您是说体温36.5℃吗", "已更正", "登记成功",
                 "【发热预警 E1】", "已15分钟无人确认", "收到 E1", "【买菜需求 R1】", "已由志愿者赵磊接单",
                 "【未按时报告 E2】", "【通知】", "今日未报", "台账"):
        assert want in text, want
    # every line starts with a time, and group lines never carry health details
    assert all(re.match(r"^(\d\d:\d\d |==| {3,}|$)", ln) for ln in text.splitlines()), text
    for ln in lines:
        if re.match(r"^\d\d:\d\d \[[^\]]+群\] 🤖", ln) and "【通知】" not in ln and "早上好" not in ln:
            assert not re.search(r"3\d\.\d|发烧|咳嗽", ln), ln


async def test_chat_as_resident_and_worker(sqlite_db, tmp_path):
    await community(sqlite_db)
    settings = Settings(database_url=sqlite_db.url)
    out: list[str] = []
    await chat("wangfang", None, settings, lines=io.StringIO("我发烧了38.5度\n"), out=out.append)
    assert any("已转告网格员张伟" in ln for ln in out)
    assert any(ln.startswith("    → 网格员张伟(私聊)") and "38.5" in ln for ln in out)
    out.clear()
    await chat("zhangwei", None, settings, lines=io.StringIO("收到 E1\n未报\n"), out=out.append)
    assert any("已确认 E1" in ln for ln in out)
    assert any("王芳(私聊)" in ln and "已收到" in ln for ln in out)
