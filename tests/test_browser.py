"""The page in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

The example community after two weeks (tests/webscene.py) is served by the real web routes; the
tests log in through the form, act from the page as a grid worker, at 1280 px and on a phone's
390×844, and read the downloaded workbook back. They take the README's screenshots
(docs/screenshots/). No browser is downloaded: Playwright drives /usr/bin/chromium, and the tests
are skipped only when no Chromium is installed (scripts/services installs it with fonts-noto-cjk).
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import subprocess
from pathlib import Path

import openpyxl
import pytest
import pytest_asyncio
from aiohttp import web
from sqlalchemy import select

from bot.app import build_runtime, handle_now
from bot.channels.console import ConsoleChannel
from bot.clock import FakeClock
from bot.config import Settings
from bot.demo import _console_everywhere
from bot.model import Inbound
from bot.web import setup_web
from storage.db import Database
from storage.models import CheckIn, Escalation, OutboundMessage, Quarantine, Resident, ServiceRequest
from tests import webscene

CHROMIUM = os.environ.get("GRIDBOT_CHROMIUM") or shutil.which("chromium") or \
    ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
G1, G2 = "成丰一网格", "成丰二网格"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install -y chromium "
                                "fonts-noto-cjk; scripts/services does it where apt exists)")


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    """The scene's database, played once for the module; each test works on a copy."""
    return asyncio.run(webscene.build(tmp_path_factory.mktemp("scene")))


class Site:
    def __init__(self, rt, url: str):
        self.rt, self.url = rt, url

    async def one(self, model, *where):
        async with self.rt.db.session() as s:
            return await s.scalar(select(model).where(*where).limit(1))

    async def code(self, user: str) -> str:
        """The open escalation of a resident's household (by their user id)."""
        async with self.rt.db.session() as s:
            r = await s.scalar(select(Resident).where(Resident.channel_user_id == user))
            e = await s.scalar(select(Escalation).where(Escalation.household_id == r.household_id,
                                                        Escalation.status != "closed"))
            return e.code


@pytest_asyncio.fixture
async def site(scene, tmp_path):
    for suffix in ("", "-wal", "-shm"):
        if Path(str(scene) + suffix).exists():
            shutil.copy(str(scene) + suffix, tmp_path / ("site.db" + suffix))
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/site.db")
    rt = build_runtime(settings, FakeClock(webscene.END), db=Database(settings.database_url), workers=0)
    _console_everywhere(rt, ConsoleChannel(lambda _: None))  # what the bot sends stays in the outbox table
    app = web.Application()
    setup_web(app, rt)
    runner = web.AppRunner(app)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = tcp._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield Site(rt, f"http://127.0.0.1:{port}")
    await runner.cleanup()
    await rt.db.dispose()


@pytest_asyncio.fixture
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        await b.close()


async def open_page(browser, site: Site, user: str = "zhangwei", *, phone: bool = False, clock: bool = False):
    opts = dict(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True) \
        if phone else dict(viewport={"width": 1280, "height": 900})
    ctx = await browser.new_context(locale="zh-CN", accept_downloads=True, **opts)
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # a script error fails the test; the refusals the tests ask for (401 before login, 403) are not errors
    page.on("console", lambda m: errors.append(m.text) if m.type == "error"
            and not m.text.startswith("Failed to load resource") else None)
    # nothing but our own server: a request elsewhere fails the test
    outside: list[str] = []
    await ctx.route("**/*", lambda route: (route.continue_() if route.request.url.startswith(site.url)
                                           else (outside.append(route.request.url), route.abort())[1]))
    if clock:
        await page.clock.install()
    await page.goto(site.url + "/dashboard/")
    await page.fill("#login-user", user)
    await page.fill("#login-password", webscene.PASSWORD)
    await page.click("#login-submit")
    await page.wait_for_selector("#app-view:not([hidden])")
    await page.wait_for_selector("#escalations .item, #escalations .empty")
    await page.wait_for_selector("#quarantines .qrow, #quarantines .empty")
    await page.wait_for_selector("#ledger .tiles")
    page.errors, page.outside = errors, outside  # type: ignore[attr-defined]
    return page


async def no_sideways_scroll(page) -> None:
    sizes = await page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
    assert sizes[0] <= sizes[1], f"the page scrolls sideways: {sizes}"
    wide = await page.evaluate("""() => Array.from(document.querySelectorAll('body *'))
        .filter(e => e.offsetParent !== null && e.getBoundingClientRect().right > window.innerWidth + 1)
        .map(e => e.tagName + '.' + e.className).slice(0, 5)""")
    assert wide == [], f"elements beyond the right edge: {wide}"


async def toast(page, want: str) -> str:
    """Waits for the page's message that says `want`; returns it."""
    await page.wait_for_function("""(w) => { const t = document.getElementById('toast');
        return !t.hidden && t.textContent.includes(w); }""", arg=want, timeout=10_000)
    return await page.text_content("#toast") or ""


async def test_a_grid_worker_acts_from_the_page(browser, site):
    """Log in; acknowledge and close an escalation, take and finish a request, release a quarantine
    that is over, 代报, download the workbook; another grid's escalation is not theirs to open."""
    page = await open_page(browser, site)
    husband = await site.code("fengfengying")  # 冯凤英 reported her husband's fever: level 2 by now
    card = page.locator(f'#escalations .item[data-code="{husband}"]')
    assert "老伴" in (await card.text_content()) and "拨打" in (await card.text_content())
    assert (await card.locator("a.call").get_attribute("href")).startswith("tel:1")
    # the other grid's fever (吴建国, 3号楼) is not on 张伟's page
    other = await site.code("wujianguo")
    assert await page.locator(f'#escalations .item[data-code="{other}"]').count() == 0

    await card.get_by_role("button", name="收到").click()
    await toast(page, f"已确认 {husband}")
    await page.wait_for_selector(f'#escalations .item.acked[data-code="{husband}"]')
    card = page.locator(f'#escalations .item[data-code="{husband}"]')
    await card.get_by_role("button", name="办结").click()
    await card.locator("form input").fill("已陪同去发热门诊，核酸已采样")
    await card.get_by_role("button", name="确认办结").click()
    await toast(page, f"已办结 {husband}")
    await page.wait_for_selector(f'#escalations .item[data-code="{husband}"]', state="detached")
    esc = await site.one(Escalation, Escalation.id == int(husband[1:]))
    assert (esc.status, esc.note) == ("closed", "已陪同去发热门诊，核酸已采样")
    async with site.rt.db.session() as s:
        told = (await s.scalars(select(OutboundMessage.text).where(OutboundMessage.to_user == "fengfengying")
                                .order_by(OutboundMessage.id))).all()
    assert any("已陪同去发热门诊" in t for t in told)

    req = page.locator("#requests .item", has_text="挂面")
    code = await req.get_attribute("data-code")
    await req.get_by_role("button", name="接单").click()
    await toast(page, f"已接单 {code}")
    await page.wait_for_selector(f'#requests .item.taken[data-code="{code}"]')
    req = page.locator(f'#requests .item[data-code="{code}"]')
    await req.get_by_role("button", name="完成").click()
    await req.locator("form input").fill("已放门口")
    await req.get_by_role("button", name="确认完成").click()
    await page.wait_for_selector(f'#requests .item[data-code="{code}"]', state="detached")
    assert (await site.one(ServiceRequest, ServiceRequest.id == int(code[1:]))).status == "done"

    jiang = page.locator("#quarantines .qrow", has_text="蒋浩然")
    assert "期满待解除" in await jiang.text_content()
    assert await page.locator("#quarantines .qrow", has_text="马欣怡").get_by_role("button").count() == 0
    await jiang.get_by_role("button", name="解除隔离").click()
    await toast(page, "已解除居家隔离：1-2-201 蒋浩然")
    await page.wait_for_selector('#quarantines .qrow:has-text("蒋浩然")', state="detached")
    q = await site.one(Quarantine, Quarantine.start == webscene.FIRST)
    assert q.released_at is not None

    await page.click("#ledger-box summary")
    await page.fill("#report-household", "2-2-302")
    await page.fill("#report-text", "36.6 正常")
    await page.click("#report-form button")
    await toast(page, "2-2-302")
    assert (await site.one(CheckIn, CheckIn.source == "staff")) is not None

    async with page.expect_download() as dl:
        await page.click("#export")
    path = await (await dl.value).path()
    wb = openpyxl.load_workbook(io.BytesIO(Path(path).read_bytes()))
    assert wb.sheetnames[:6] == ["汇总", "住户台账", "异常情况", "预警", "服务请求", "隔离人员"]
    assert [r[1] for r in wb["汇总"].iter_rows(min_row=2, values_only=True)] == [G1]
    escs = {r[0]: r for r in wb["预警"].iter_rows(min_row=2, values_only=True)}
    assert escs[husband][15] == "已陪同去发热门诊，核酸已采样" and "办结" in escs[husband][16]
    assert other not in escs
    homes = list(wb["住户台账"].iter_rows(min_row=2, values_only=True))
    assert any(r[4] == "302" and r[11] for r in homes)

    # another grid's escalation: 403 from the API even with this session's token, and nothing changes
    status = await page.evaluate("""async (code) => {
        const me = await (await fetch('/api/me')).json();
        const r = await fetch('/api/escalations/' + code + '/ack', {method: 'POST',
            headers: {'X-CSRF-Token': me.csrf, 'Content-Type': 'application/json'}, body: '{}'});
        const none = await fetch('/api/escalations/' + code + '/ack', {method: 'POST'});
        return [r.status, (await r.json()).error, none.status];
    }""", other)
    assert status[0] == 403 and "不在您负责" in status[1] and status[2] == 403
    assert (await site.one(Escalation, Escalation.id == int(other[1:]))).status == "open"
    assert page.errors == [] and page.outside == []


async def test_on_a_phone_escalations_come_first_and_nothing_scrolls_sideways(browser, site):
    page = await open_page(browser, site, phone=True)
    await no_sideways_scroll(page)
    esc = await page.locator("#esc-box").bounding_box()
    first = await page.locator("#escalations .item").first.bounding_box()
    ledger = await page.locator("#ledger-box").bounding_box()
    assert esc["y"] < ledger["y"] and first["y"] + 120 < 844, "the first screen shows an escalation card"
    assert await page.locator("#escalations table").count() == 0
    text = await page.locator("#escalations .item").first.text_content()
    for part in ("E", "发热", "老伴", "拨打", "收到", "办结", "街道"):
        assert part in text, part
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / "escalations-phone.png"))
    # acting on a phone: tap, with the note box open nothing overflows either
    card = page.locator("#escalations .item").first
    await card.get_by_role("button", name="办结").tap()
    await no_sideways_scroll(page)
    await card.locator("form input").fill("已电话联系，本人在家休息")
    await card.get_by_role("button", name="确认办结").tap()
    await toast(page, "已办结")
    for section in ("#qua-box", "#ledger-box", "#chart"):
        await page.locator(section).scroll_into_view_if_needed()
        await no_sideways_scroll(page)
    assert page.errors == [] and page.outside == []


async def test_the_quarantine_calendar(browser, site):
    page = await open_page(browser, site)
    rows = page.locator("#quarantines .qrow")
    names = [await rows.nth(i).locator("strong").text_content() for i in range(await rows.count())]
    assert sorted(names) == sorted(["马欣怡", "柏俊杰", "蒋浩然"])  # 吴建国 is the other grid's
    ma = page.locator("#quarantines .qrow", has_text="马欣怡")
    assert await ma.locator(".day").count() == 14 and await ma.locator(".slot").count() == 28
    states = await ma.locator(".slot").evaluate_all("ss => ss.map(s => s.className.replace('slot s-', ''))")
    # 02-01 .. 02-09 are history; 02-10 morning: 37.9 (abnormal); the afternoon and after: to come
    assert states[18] == "abnormal" and set(states[19:]) == {"pending"}
    assert set(states[:18]) <= {"normal", "abnormal", "missed"} and "normal" in states[:18]
    assert await ma.locator(".slot").nth(18).get_attribute("title") == "02-10 上午 异常 37.9℃"
    missed = await page.locator("#quarantines .s-missed").count()
    assert missed > 0
    await page.locator("#qua-box").screenshot(path=str(SHOTS / "quarantine-calendar.png"))
    await no_sideways_scroll(page)
    # the same at a phone's width: 14 days fit
    phone = await open_page(browser, site, phone=True)
    await phone.locator("#qua-box").scroll_into_view_if_needed()
    await no_sideways_scroll(phone)
    box = await phone.locator("#quarantines .qrow .cal").first.bounding_box()
    assert box["x"] + box["width"] <= 390


async def test_street_staff_see_their_grids_and_the_date_filters_everything(browser, site):
    page = await open_page(browser, site, "liuyang")
    table = page.locator("#grid-table")
    assert [await a.text_content() for a in await table.locator("a").all()] == [G1, G2]
    codes = await page.locator("#escalations .item").evaluate_all("cs => cs.map(c => c.dataset.code)")
    assert await site.code("wujianguo") in codes and await site.code("fengfengying") in codes
    await page.locator("#ledger-box").screenshot(path=str(SHOTS / "ledger-street.png"))
    await table.get_by_role("link", name=G2).click()
    await page.wait_for_function("(g) => document.getElementById('grid').value === g", arg=G2)
    await page.wait_for_selector(f'#escalations .item[data-code="{await site.code("fengfengying")}"]', state="detached")
    assert "成丰二网格" in page.url or "%E6%88%90" in page.url
    # one grid: its ledger tiles and unreported rooms
    await page.wait_for_selector("#ledger .rooms")
    # yesterday: the escalations live that day, the ledger and the calendar of that day
    await page.fill("#date", "2026-02-09")
    await page.dispatch_event("#date", "change")
    await page.wait_for_function("(d) => document.getElementById('ledger-date').textContent === d", arg="2026-02-09")
    await page.wait_for_selector("#escalations .item, #escalations .empty")
    await page.wait_for_function("(w) => document.getElementById('esc-count').textContent.indexOf(w) === 0", arg="当日")
    codes = await page.locator("#escalations .item").evaluate_all("cs => cs.map(c => c.dataset.code)")
    assert await site.code("wujianguo") not in codes  # opened on 02-10
    href = await page.get_attribute("#export", "href")
    assert "date=2026-02-09" in href and "grid=" in href
    assert await page.locator("#quarantines .day.today .d").first.text_content() == "9"
    assert page.errors == [] and page.outside == []

    worker = await open_page(browser, site)
    await worker.locator("#ledger-box").screenshot(path=str(SHOTS / "ledger.png"))


async def test_new_escalations_appear_without_a_reload(browser, site):
    page = await open_page(browser, site, clock=True)
    assert await page.title() == "网格工作台 · gridbot"
    before = await page.locator("#escalations .item").count()
    await handle_now(site.rt, Inbound(channel="wecom", msg_id="late-fever", sender_id="zouguilan",
                                      text="孩子发烧了 38.8", sent_at=site.rt.clock.now()))
    await page.clock.run_for(16_000)
    await page.wait_for_function("(n) => document.querySelectorAll('#escalations .item').length === n", arg=before + 1)
    assert await page.title() == "(1) 新预警 · 网格工作台 · gridbot"
    assert await page.locator("#escalations .tag.new").count() == 1
    await page.click("h1")
    assert await page.title() == "网格工作台 · gridbot"


async def test_the_page_is_chinese_and_its_glyphs_render(browser, site):
    """The text is the expected Chinese, and a CJK font draws it: with no such font Chromium draws
    every character as the same missing-glyph box, which this compares against."""
    page = await open_page(browser, site)
    text = await page.inner_text("body")
    for word in ("网格工作台", "张伟", "预警", "服务请求", "居家隔离", "台账", "导出Excel", "马欣怡", "未报房号"):
        assert word in text, word
    drawn = await page.evaluate("""() => {
        const font = getComputedStyle(document.body).font;
        function pixels(s) {
            const c = document.createElement('canvas'); c.width = 64; c.height = 40;
            const g = c.getContext('2d'); g.font = font.replace(/\\d+px/, '28px'); g.fillStyle = '#000';
            g.fillText(s, 4, 30);
            return Array.from(g.getImageData(0, 0, 64, 40).data.filter((v, i) => i % 4 === 3));
        }
        const box = pixels('\\u{10FFFD}'), box2 = pixels('\\u{E0FFF}');
        const same = (a, b) => a.every((v, i) => v === b[i]);
        return ['网', '格', '报', '警'].map(ch => {
            const p = pixels(ch);
            return {ch: ch, ink: p.filter(v => v > 0).length, box: same(p, box) || same(p, box2)};
        });
    }""")
    for d in drawn:
        assert d["ink"] > 30 and not d["box"], f"{d['ch']} is not drawn by a CJK font: {d}"
    fc = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True)
    assert fc.returncode == 0 and fc.stdout.strip(), "no Chinese font installed (apt-get install fonts-noto-cjk)"
