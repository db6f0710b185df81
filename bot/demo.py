"""`gridbot demo` (one simulated day of the example community) and `gridbot chat` (talk to the bot).

Both run the REAL pipeline in process (inbox → identity → lock → handlers → outbox → sender) with
every channel's deliveries going to the console, so nothing leaves the machine. The demo uses a
FakeClock and the scheduler's own job functions; it needs no network and no credentials.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.channels.base import Delivery
from bot.channels.console import ConsoleChannel
from bot.clock import Clock, FakeClock
from bot.config import Settings, load_settings
from bot.data import EXAMPLE_ROSTER
from bot.model import Inbound
from scheduler import jobs
from storage.db import Database
from storage.models import Base, Building, Resident, Staff

DEMO_DAY = (2026, 2, 10)
BOT = "🤖"
STEP = timedelta(minutes=5)


class Names:
    """Display names for user ids and chat ids, read from the database once."""

    def __init__(self) -> None:
        self.users: dict[str, str] = {}
        self.chats: dict[str, str] = {}

    async def load(self, db: Database) -> None:
        async with db.session() as s:
            for st in (await s.scalars(select(Staff))).all():
                self.users[st.channel_user_id] = f"{st.role}{st.name}"
            for r in (await s.scalars(select(Resident).where(Resident.channel_user_id.is_not(None)))).unique().all():
                self.users.setdefault(r.channel_user_id, r.name)
            for b in (await s.scalars(select(Building).where(Building.chat_id.is_not(None)))).unique().all():
                self.chats[b.chat_id] = f"{b.name}群"

    def user(self, uid: str | None, fallback: str | None = None) -> str:
        return self.users.get(uid or "", fallback or uid or "?")

    def chat(self, cid: str | None) -> str:
        return self.chats.get(cid or "", cid or "?")


def _indent(text: str, pad: str) -> str:
    return text.replace("\n", "\n" + pad)


def _console_everywhere(rt: Any, console: ConsoleChannel) -> None:
    """Every channel delivers to this console: a demo or chat session never reaches a real platform."""
    for name in ("console", "wecom", "aibot", "bridge"):
        rt.channels[name] = console


# --- gridbot demo ----------------------------------------------------------------------------------


class Demo:
    def __init__(self, out: Callable[[str], None] = print):
        self.out = out
        self.names = Names()
        self.ids = itertools.count(1)
        self.tz = ZoneInfo("Asia/Shanghai")

    def _print_delivery(self, d: Delivery) -> None:
        t = self.clock.now().strftime("%H:%M")
        if d.to_chat:
            head = f"{t} [{self.names.chat(d.to_chat)}] {BOT} "
        else:
            head = f"{t} {BOT} → {self.names.user(d.to_user)}: "
        self.out(head + _indent(d.text, " " * 8))

    async def setup(self, workdir: Path) -> None:
        from bot.app import build_runtime
        from storage.roster import import_roster

        # every confirmation shown (a district runs with GRIDBOT_CONFIRM=abnormal: README)
        self.settings = Settings(database_url=f"sqlite+aiosqlite:///{workdir}/demo.db", confirm="all")
        self.db = Database(self.settings.database_url)
        async with self.db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await import_roster(self.db, EXAMPLE_ROSTER, tz=self.settings.tz,
                            quarantine_days=self.settings.quarantine_days)
        self.clock = FakeClock(datetime(*DEMO_DAY, 7, 55, tzinfo=self.tz))
        self.rt = build_runtime(self.settings, self.clock, db=self.db, workers=0)
        _console_everywhere(self.rt, ConsoleChannel(self._print_delivery))
        await self.names.load(self.db)
        async with self.db.session() as s:
            self.people = {r.channel_user_id: r for r in (await s.scalars(
                select(Resident).where(Resident.channel_user_id.is_not(None)))).unique().all()}
            self.buildings = {b.name: b for b in (await s.scalars(select(Building))).unique().all()}

    async def at(self, hh: int, mm: int) -> None:
        """Moves the clock to hh:mm in steps of STEP, running the scheduler's sweeps at each, as the
        server's every-minute jobs would (escalations move up at 15 and 30 minutes)."""
        target = datetime(*DEMO_DAY, hh, mm, tzinfo=self.tz)
        while self.clock.now() + STEP < target:
            self.clock.advance(STEP)
            await self.sweeps()
        self.clock.set(target)
        await self.sweeps()

    def label(self, uid: str) -> str:
        return self.people[uid].household.label

    async def say(self, hh: int, mm: int, uid: str, text: str, *, group: bool | None = None,
                  name: str | None = None, building: str | None = None) -> None:
        """A message from a resident or a worker; residents of AI-bot and bridge buildings write in
        their building's group, the others privately to the WeCom app (as the roster says)."""
        from bot.app import handle_now

        await self.at(hh, mm)
        person = self.people.get(uid)
        if name:
            self.names.users.setdefault(uid, name)
        channel = person.channel if person is not None and person.channel else "wecom"
        chat = None
        b = self.buildings.get(building) if building else (person.household.building if person else None)
        if group is None:
            group = channel in ("aibot", "bridge")
        if group and b is not None:
            chat, channel = b.chat_id, b.channel
        who = self.names.user(uid, name)
        where = f"[{self.names.chat(chat)}] {who}: " if chat else f"[私聊] {who} → {BOT}: "
        self.out(f"{self.clock.now():%H:%M} {where}{_indent(text, ' ' * 8)}")
        await handle_now(self.rt, Inbound(channel=channel, msg_id=f"demo-{next(self.ids)}", sender_id=uid,
                                          text=text, sent_at=self.clock.now(), chat_id=chat, sender_name=name))

    async def job(self, hh: int, mm: int, name: str, title: str) -> None:
        await self.at(hh, mm)
        self.out(f"{self.clock.now():%H:%M} ⏰ {title}")
        await jobs.run_job(name, self.rt, self.clock.now())
        await self.rt.sender.deliver_due()

    async def sweeps(self) -> None:
        """The scheduler's minute-by-minute sweeps, run quietly whenever the clock moves."""
        await jobs.run_job("escalation-sweep", self.rt, self.clock.now())
        await jobs.run_job("follow-up", self.rt, self.clock.now())
        await self.rt.sender.deliver_due()

    async def code(self, prefix: str) -> str:
        """The code of the newest escalation or request, as the worker would read it in the alert."""
        from storage.models import Escalation, ServiceRequest

        model = Escalation if prefix == "E" else ServiceRequest
        async with self.db.session() as s:
            row = await s.scalar(select(model).order_by(model.id.desc()).limit(1))
        return f"{prefix}{row.id}" if row else f"{prefix}?"

    async def play(self) -> None:
        o = self.out
        o(f"== gridbot demo: 成丰社区 (the example roster), {DEMO_DAY[0]}-{DEMO_DAY[1]:02d}-{DEMO_DAY[2]:02d} ==")
        o("   1、2号楼: residents answer the WeCom app privately; 3号楼: WeCom AI-bot group; 5号院: bridge group\n")
        await self.job(8, 0, "daily-prompt", "每日报平安提醒（各楼群）")
        await self.job(8, 0, "quarantine-reminders", "居家隔离体温提醒（私聊）")
        await self.say(8, 2, "lvfengying", f"{self.label('lvfengying')} 36.5 正常")
        await self.say(8, 3, "maxinyi", "36.4")
        await self.say(8, 5, "zouguilan", "全家都好")
        await self.say(8, 6, "qinshuzhen", "36度8")
        await self.say(8, 7, "zhengli", "老人36.6 孩子36.9")
        await self.say(8, 9, "jiangjunjie", "报平安，一家三口体温都正常")
        await self.say(8, 12, "chenjunjie", "替1-2-102孔红霞报平安，她没有微信")
        await self.say(8, 15, "lvli2", f"{self.label('lvli2')} 36.6 正常")
        await self.say(8, 18, "xuyumei", "365")
        await self.say(8, 19, "xuyumei", "36.5 正常")
        await self.say(8, 24, "maguoqing", "36.9")
        await self.say(8, 25, "maguoqing", "刚才写错了，是36.5")
        await self.say(8, 30, "yanyutong", "5号院10号 平安")
        await self.say(8, 33, "caoguilan", "今天天气真好，大家注意保暖")
        await self.say(8, 40, "mali-wx", "2-1-101 马丽", name="马丽", group=False)
        await self.say(8, 41, "mali-wx", "36.7 正常", name="马丽", group=False)
        # nobody becomes a resident by saying so: the grid worker knows her and confirms
        await self.say(8, 45, "zhangwei", "确认 2-1-101 马丽")
        await self.say(9, 10, "fengfengying", "我老伴发烧了38.5度，还咳嗽，浑身没劲")
        e1 = await self.code("E")
        await self.say(9, 26, "zhangwei", f"收到 {e1}")
        await self.say(10, 0, "huajunjie", "能帮忙买点青菜、鸡蛋和挂面吗？我们家在隔离出不去")
        r1 = await self.code("R")
        await self.say(10, 12, "zhaolei", f"接单 {r1}")
        await self.say(10, 20, "wujianguo", "36.7")
        await self.say(11, 30, "zhangwei", f"完成 {e1} 已陪同去发热门诊，核酸已采样")
        await self.say(11, 40, "zhaolei", f"完成 {r1} 已放门口")
        await self.job(12, 0, "progress", "午间打卡进度（各楼群）")
        e2 = await self.code("E")
        await self.say(12, 8, "zhangwei", f"收到 {e2}")
        await self.say(12, 20, "baijunjie", "36.6 不好意思，上午在睡觉没看到")
        await self.say(12, 25, "zhangwei", f"完成 {e2} 已电话联系，本人在家无异常")
        await self.job(14, 0, "quarantine-reminders", "居家隔离体温提醒（下午）")
        await self.say(14, 10, "maxinyi", "36.5 正常")
        await self.say(14, 30, "zhangwei", "通知 网格 明天上午9点到12点在小区南门做核酸检测，请带好身份证，排队保持一米间距")
        await self.say(17, 0, "zhangwei", "未报")
        await self.job(21, 0, "ledger", "每日台账推送（网格员私聊）")
        o("\n== end of the day ==")


def cli_demo(args: Any) -> int:
    if getattr(args, "roster_path", False):
        print(EXAMPLE_ROSTER)
        return 0

    async def run() -> None:
        with tempfile.TemporaryDirectory(prefix="gridbot-demo-") as tmp:
            demo = Demo()
            await demo.setup(Path(tmp))
            try:
                await demo.play()
            finally:
                await demo.db.dispose()

    import logging

    # the transcript is the output; operational warnings of a simulated day are noise here
    logging.disable(logging.WARNING)
    try:
        asyncio.run(run())
    finally:
        logging.disable(logging.NOTSET)
    return 0


# --- gridbot chat ----------------------------------------------------------------------------------


async def chat(user: str, group: str | None, settings: Settings, lines: Any = None,
               out: Callable[[str], None] = print, clock: Clock | None = None) -> int:
    from bot.app import build_runtime, handle_now

    db = Database(settings.database_url)
    names = Names()

    def show(d: Delivery) -> None:
        if d.to_user == user:
            out(f"{BOT} {_indent(d.text, '   ')}")
        elif d.to_chat:
            out(f"    → [{names.chat(d.to_chat)}]: {_indent(d.text, ' ' * 8)}")
        else:
            out(f"    → {names.user(d.to_user)}(私聊): {_indent(d.text, ' ' * 8)}")

    try:
        await names.load(db)
        rt = build_runtime(settings, clock, db=db, workers=0)
        _console_everywhere(rt, ConsoleChannel(show))
        async with db.session() as s:
            st = await s.scalar(select(Staff).where(Staff.channel_user_id == user))
            r = await s.scalar(select(Resident).where(Resident.channel_user_id == user))
            b = await s.scalar(select(Building).where(Building.chat_id == group)) if group else None
        channel = (b.channel if b else None) or (r.channel if r else None) or (st.channel if st else None) or "console"
        who = f"{st.role}{st.name}" if st else (r.name if r else f"{user}（未登记）")
        out(f"[gridbot chat] 你是 {who}，{'在 ' + names.chat(group) if group else '私聊机器人'}；Ctrl-D 结束。")
        n = 0
        stream = lines if lines is not None else sys.stdin
        for line in stream:
            text = line.rstrip("\n")
            if not text.strip():
                continue
            n += 1
            now = rt.clock.now()
            await handle_now(rt, Inbound(channel=channel, msg_id=f"chat-{user}-{now.timestamp():.6f}-{n}",
                                         sender_id=user, text=text, sent_at=now, chat_id=group))
            # let the sweeps move the chain while someone types, as the server's scheduler would
            await jobs.run_job("escalation-sweep", rt, rt.clock.now())
            await rt.sender.deliver_due()
    finally:
        await db.dispose()
    return 0


def cli_chat(args: Any) -> int:
    settings = load_settings()
    return asyncio.run(chat(args.user, getattr(args, "group", None), settings))


__all__ = ["cli_demo", "cli_chat", "chat", "Demo"]
