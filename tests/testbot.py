"""The `testbot`: the real pipeline, dispatcher and handlers over a real database — "say X, expect Y".

    async def test_fever(bot):
        await bot.say("wangfang", "我发烧了38.5度")
        assert "38.5" in bot.last_to("zhangwei")

Messages go in through `bot.app.handle_now` on the console channel (accept → inbox → identity →
lock → session → handlers → outbox → delivery), so what a test sees is what a user would get. Every
outbox row is kept in `bot.sent` (including rows for channels the test runtime has no adapter for,
e.g. the WeCom app used for AI-bot residents' private messages).

`community()` seeds a small community by hand: street 天桥街道; 阳光社区 with 一网格 (3号楼 and the
courtyard 5号院) and 二网格 (7号楼); 幸福社区 with 三网格, which has a 3号楼 too (ambiguous numbers).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select

from bot.clock import FakeClock
from bot.config import Settings
from bot.model import Inbound
from bot.state import MemoryState
from handlers.common import looks_private
from storage.db import Database
from storage.models import (
    Building,
    Community,
    Grid,
    Household,
    OutboundMessage,
    Quarantine,
    Resident,
    Staff,
    StaffScope,
    Street,
)

CH = "console"


@dataclass
class Seed:
    ids: dict[str, int] = field(default_factory=dict)


async def community(db: Database) -> Seed:
    """The hand-made example community (ids by short name in Seed.ids)."""
    seed = Seed()
    async with db.session() as s:
        street = Street(name="天桥街道")
        sun = Community(name="阳光社区", street=street)
        joy = Community(name="幸福社区", street=street)
        g1 = Grid(name="一网格", community=sun)
        g2 = Grid(name="二网格", community=sun)
        g3 = Grid(name="三网格", community=joy)
        b3 = Building(name="3号楼", number="3", grid=g1, chat_id="g3", channel=CH)
        b5 = Building(name="5号院", number="5", grid=g1, chat_id="g5", channel=CH)
        b7 = Building(name="7号楼", number="7", grid=g2, chat_id="g7", channel=CH)
        bj = Building(name="幸福3号楼", number="3", grid=g3, chat_id="gj3", channel=CH)
        homes = {
            "3-2-501": Household(building=b3, unit="2", room="501"),
            "3-2-502": Household(building=b3, unit="2", room="502"),
            "3-2-601": Household(building=b3, unit="2", room="601"),
            "3-1-101": Household(building=b3, unit="1", room="101"),
            "3-1-1001": Household(building=b3, unit="1", room="1001"),
            "5-12": Household(building=b5, unit="", room="12"),
            "7-1-201": Household(building=b7, unit="1", room="201"),
            "j3-2-501": Household(building=bj, unit="2", room="501"),
        }
        s.add_all([street, sun, joy, g1, g2, g3, b3, b5, b7, bj, *homes.values()])
        await s.flush()

        def staff(key, name, role, *, grids=(), streets=()):
            st = Staff(name=name, role=role, channel=CH, channel_user_id=key)
            st.scopes = [StaffScope(grid_id=g.id) for g in grids] + [StaffScope(street_id=x.id) for x in streets]
            s.add(st)
            return st

        people = {
            "zhangwei": staff("zhangwei", "张伟", "网格员", grids=[g1]),
            "zhaoqiang": staff("zhaoqiang", "赵强", "网格员", grids=[g2]),
            "qianjun": staff("qianjun", "钱军", "网格员", grids=[g3]),
            "chengang": staff("chengang", "陈刚", "网格长", grids=[g1]),
            "liuyi": staff("liuyi", "刘医生", "医护", grids=[g1]),
            "huangyi": staff("huangyi", "黄医生", "医护"),
            "lina": staff("lina", "李娜", "志愿者", grids=[g1]),
            "sunmin": staff("sunmin", "孙敏", "街道值班", streets=[street]),
            "zhoutao": staff("zhoutao", "周涛", "街道干部", streets=[street]),
            "wangjing": staff("wangjing", "王警官", "民警", grids=[g1]),
        }
        await s.flush()
        res = {
            "wangfang": Resident(household=homes["3-2-501"], name="王芳", channel=CH, channel_user_id="wangfang"),
            "liudaye": Resident(household=homes["3-2-502"], name="刘大爷"),  # no phone: neighbours report
            "chenjing": Resident(household=homes["3-1-101"], name="陈静", channel=CH, channel_user_id="chenjing",
                                 category="居家隔离", cadre_id=people["zhoutao"].id,
                                 police_id=people["wangjing"].id, medic_id=people["huangyi"].id),
            "laozhao": Resident(household=homes["5-12"], name="老赵", channel=CH, channel_user_id="laozhao",
                                category="重点人员", cadre_id=people["zhoutao"].id,
                                police_id=people["wangjing"].id, medic_id=people["huangyi"].id),
            "zhaoliu": Resident(household=homes["7-1-201"], name="赵六", channel=CH, channel_user_id="zhaoliu"),
            "wangma": Resident(household=homes["3-2-601"], name="王妈", channel="aibot", channel_user_id="wangma"),
        }
        s.add_all(res.values())
        await s.flush()
        # 陈静: home quarantine since 2026-02-06, so 2026-02-10 is day 5 of 14
        s.add(Quarantine(resident_id=res["chenjing"].id, start=date(2026, 2, 6), days=14))
        seed.ids.update({k: v.id for k, v in people.items()})
        seed.ids.update({k: v.id for k, v in res.items()})
        seed.ids.update({"h:" + k: v.id for k, v in homes.items()})
        seed.ids.update({"g1": g1.id, "g2": g2.id, "g3": g3.id, "b3": b3.id, "street": street.id})
    return seed


class TestBot:
    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, db: Database, clock: FakeClock, settings: Settings, state: Any = None):
        from bot.app import build_runtime

        self.db, self.clock, self.settings = db, clock, settings
        self.rt = build_runtime(settings, clock, db=db, state=state, workers=0)
        self.sent: list[OutboundMessage] = []
        self._ids = itertools.count(1)
        self.seed = Seed()

    # -- talking ---------------------------------------------------------------------------------

    def inbound(self, sender: str, text: str, *, chat: str | None = None, channel: str = CH,
                name: str | None = None, msg_id: str | None = None, reply_to: str | None = None) -> Inbound:
        return Inbound(channel=channel, msg_id=msg_id or f"m{next(self._ids)}", sender_id=sender, text=text,
                       sent_at=self.clock.now(), chat_id=chat, sender_name=name, reply_to=reply_to)

    async def say(self, sender: str, text: str, **kw) -> list[OutboundMessage]:
        """Sends one message through the real pipeline; returns the outbox rows it produced."""
        from bot.app import handle_now

        rows = await handle_now(self.rt, self.inbound(sender, text, **kw))
        await self._collect()
        return rows

    async def send(self, inbound: Inbound) -> list[OutboundMessage]:
        from bot.app import handle_now

        rows = await handle_now(self.rt, inbound)
        await self._collect()
        return rows

    async def tick(self, name: str) -> list[OutboundMessage]:
        """Fires the scheduler's timer `name` at the clock's now through the real path; returns
        what it sent, delivered."""
        from scheduler.jobs import run_job

        mark = self.sent[-1].id if self.sent else 0
        await run_job(name, self.rt, self.clock.now())
        await self.rt.sender.deliver_due()
        return [r for r in await self._collect() if r.id > mark]

    async def sweep(self) -> list[OutboundMessage]:
        """The escalation sweep at the clock's now, delivered."""
        return await self.tick("escalation-sweep")

    async def _collect(self) -> list[OutboundMessage]:
        last = self.sent[-1].id if self.sent else 0
        async with self.db.session() as s:
            rows = list((await s.scalars(select(OutboundMessage).where(OutboundMessage.id > last)
                                         .order_by(OutboundMessage.id))).all())
        self.sent += rows
        return rows

    # -- looking ---------------------------------------------------------------------------------

    def to(self, user: str) -> list[str]:
        return [r.text for r in self.sent if r.to_user == user]

    def last_to(self, user: str) -> str:
        got = self.to(user)
        assert got, f"nothing was sent to {user}"
        return got[-1]

    def to_chat(self, chat: str) -> list[str]:
        return [r.text for r in self.sent if r.to_chat == chat]

    def mark(self) -> int:
        return len(self.sent)

    def since(self, mark: int) -> list[OutboundMessage]:
        return self.sent[mark:]

    def group_leaks(self) -> list[str]:
        """Group messages (other than staff notices) that carry health details, rooms or names."""
        names = ("王芳", "刘大爷", "陈静", "老赵", "赵六", "王妈")
        bad = []
        for r in self.sent:
            if r.to_chat is None or r.kind == "notice":
                continue
            if looks_private(r.text) or any(n in r.text for n in names):
                bad.append(r.text)
        return bad

    def at(self, hh: int, mm: int = 0) -> None:
        now = self.clock.now()
        self.clock.set(datetime(now.year, now.month, now.day, hh, mm, tzinfo=now.tzinfo))



def clock_state(clock: FakeClock) -> MemoryState:
    """An in-process state store whose TTLs run on the test's clock (advance it past a TTL)."""
    return MemoryState(time_fn=lambda: clock.now().timestamp())


async def make_bot(db: Database, clock: FakeClock, state: Any = None, **settings_kw) -> TestBot:
    """A testbot with the hand-made community; test files wrap it in their fixtures:

        @pytest_asyncio.fixture
        async def bot(sqlite_db, clock):
            return await make_bot(sqlite_db, clock)

    `state` replaces the runtime's state store: `clock_state(clock)`, or a RedisState on a test prefix.
    """
    settings_kw.setdefault("confirm", "all")  # every reply to look at (a district's default is "abnormal")
    settings = Settings(database_url=db.url, **settings_kw)
    tb = TestBot(db, clock, settings, state=state)
    tb.seed = await community(db)
    return tb
