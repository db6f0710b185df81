"""`gridbot demo` plays a convincing day; `gridbot chat` talks to the bot against a database."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

import pytest

from bot.config import Settings
from bot.demo import Demo, chat
from tests.testbot import community

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def demo_lines(tmp_path_factory) -> list[str]:
    """What `gridbot demo` prints, played once for this module's tests."""
    lines: list[str] = []

    async def play() -> None:
        demo = Demo(out=lines.append)
        await demo.setup(tmp_path_factory.mktemp("demo"))
        try:
            await demo.play()
        finally:
            await demo.db.dispose()

    asyncio.run(play())
    return lines


def test_demo_day_has_the_story(demo_lines):
    lines = demo_lines
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


# --- the README's excerpt stays true ---------------------------------------------------------------


def _messages(lines: list[str]) -> list[str]:
    """The demo's output as one line per message: a message's continuation lines (indented) are
    joined to its first with single spaces, as the README's excerpt shows them."""
    out: list[str] = []
    for ln in "\n".join(lines).splitlines():
        if re.match(r"^\d\d:\d\d ", ln):
            out.append(ln.rstrip())
        elif ln.startswith(" ") and out and ln.strip():
            out[-1] += " " + ln.strip()
    return out


def _vary(text: str) -> str:
    """Escalation and request numbers and clock times may move when the story is retold."""
    return re.sub(r"\d{1,2}:\d\d", "HH:MM", re.sub(r"\b([ER])\d+\b", r"\1#", text))


def _matches(excerpt: str, message: str) -> bool:
    """An excerpt line is the message itself, or its beginning and some of its parts in order, the
    omissions marked with "…" (at the end: the message goes on)."""
    pieces = [p.strip() for p in _vary(excerpt).split("…")]
    text = _vary(message)
    if not text.startswith(pieces[0]):
        return False
    at = len(pieces[0])
    for piece in pieces[1:]:
        if not piece:
            continue
        found = text.find(piece, at)
        if found < 0:
            return False
        at = found + len(piece)
    return excerpt.rstrip().endswith("…") or at == len(text)


def readme_excerpt() -> list[str]:
    body = README.read_text(encoding="utf-8")
    m = re.search(r"### A day, as `gridbot demo` plays it\n.*?```\n(.*?)\n```", body, re.DOTALL)
    assert m, "README.md has no demo excerpt under '### A day, as `gridbot demo` plays it'"
    return [ln for ln in m.group(1).splitlines() if ln.strip()]


def test_readme_excerpt_is_what_the_demo_prints(demo_lines):
    messages = _messages(demo_lines)
    excerpt = readme_excerpt()
    assert len(excerpt) >= 15
    at = 0
    for line in excerpt:
        found = next((i for i in range(at, len(messages)) if _matches(line, messages[i])), None)
        if found is None:
            clock = line[:5]
            near = [m for m in messages if m.startswith(clock)]
            pytest.fail("README.md's demo excerpt has a line the demo does not print (in this order):\n"
                        f"  {line}\nthe demo at {clock}:\n  " + "\n  ".join(near or messages[at:at + 5]))
        at = found + 1


@pytest.mark.parametrize(("excerpt", "ok"), [
    ("09:10 🤖 → 张伟: 【发热预警 E1】 2-1-202 … 老伴 体温38.5℃…", True),
    ("09:10 🤖 → 张伟: 【发热预警 E7】 2-1-202 … 老伴 体温38.5℃…", True),  # another number
    ("09:10 🤖 → 张伟: 【发热预警 E1】 2-1-202 电话：138 老伴 体温38.5℃，咳嗽 原话：“发烧了” 报告时间：09:10", True),
    ("09:10 🤖 → 张伟: 【发热预警 E1】 2-1-202 电话：138", False),  # the message goes on: needs "…"
    ("09:10 🤖 → 张伟: 【发热预警 E1】 2-1-203 …", False),
    ("09:10 🤖 → 张伟: … 老伴 体温39.5℃…", False),
    ("09:10 🤖 → 张伟: 【发热预警 E1】 … 原话 … 电话 …", False),  # parts out of order
])
def test_excerpt_matching(excerpt, ok):
    message = "09:10 🤖 → 张伟: 【发热预警 E1】 2-1-202 电话：138 老伴 体温38.5℃，咳嗽 原话：“发烧了” 报告时间：09:10"
    assert _matches(excerpt, message) is ok
