"""The dashboard and its API: login, sessions, brute-force slowing, scope, the data, the page."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from aiohttp import web
from sqlalchemy import select, update

from bot.clock import FakeClock
from bot.config import Settings
from bot.runtime import Runtime
from bot.state import MemoryState
from bot.web import setup_web
from bot.web.auth import COOKIE
from bot.web.common import mask_phone
from storage.db import Database
from storage.models import (
    AuditEvent,
    Building,
    CheckIn,
    Community,
    Escalation,
    Grid,
    Household,
    Quarantine,
    Resident,
    ServiceRequest,
    Staff,
    StaffScope,
    Street,
)
from storage.staffauth import hash_password

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 2, 10)
G1, G2, G3 = "泺源一网格", "泺源二网格", "天桥一网格"
PASSWORD = "secret-pass-1"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=TZ)


async def seed(db: Database) -> dict[str, int]:
    """Two streets; street A has grids G1 and G2, street B has G3. Facts mostly in G1."""
    hashed = hash_password(PASSWORD)
    async with db.session() as s:
        sa, sb = Street(name="泺源街道"), Street(name="天桥街道")
        s.add_all([sa, sb])
        await s.flush()
        ca, cb = Community(name="文化东路社区", street_id=sa.id), Community(name="北园社区", street_id=sb.id)
        s.add_all([ca, cb])
        await s.flush()
        g1, g2, g3 = Grid(name=G1, community_id=ca.id), Grid(name=G2, community_id=ca.id), \
            Grid(name=G3, community_id=cb.id)
        s.add_all([g1, g2, g3])
        await s.flush()
        b1 = Building(name="1号楼", number="1", grid_id=g1.id, chat_id="chat-1")
        b2 = Building(name="2号楼", number="2", grid_id=g2.id, chat_id="chat-2")
        b3 = Building(name="天桥3号楼", number="3", grid_id=g3.id, chat_id="chat-3")
        s.add_all([b1, b2, b3])
        await s.flush()
        hs = {}
        for b, unit, room in [(b1, "1", "101"), (b1, "1", "102"), (b1, "1", "201"), (b1, "2", "101"),
                              (b2, "1", "101"), (b2, "1", "102"), (b3, "1", "101")]:
            h = Household(building_id=b.id, unit=unit, room=room)
            s.add(h)
            await s.flush()
            hs[f"{b.number}-{unit}-{room}"] = h.id
        zhang = Resident(household_id=hs["1-1-101"], name="张三", phone="13812345678", channel="wecom",
                         channel_user_id="r-zhang", bound_at=at(DAY, 8))
        li = Resident(household_id=hs["1-1-102"], name="李四", phone=None)
        wang = Resident(household_id=hs["1-1-201"], name="王五", phone="13900001111", category="居家隔离")
        zhao = Resident(household_id=hs["3-1-101"], name="赵六", phone="13700002222")
        s.add_all([zhang, li, wang, zhao])
        await s.flush()
        s.add_all([
            Quarantine(resident_id=wang.id, start=DAY - timedelta(days=4), days=14),
            Quarantine(resident_id=zhao.id, start=DAY - timedelta(days=2), days=14),
        ])

        def checkin(label: str, status: str, day: date = DAY, fever: bool = False) -> CheckIn:
            return CheckIn(household_id=hs[label], date=day, status=status, fever=fever,
                           temperature=38.2 if fever else 36.5, created_at=at(day, 9), updated_at=at(day, 9))

        s.add_all([
            checkin("1-1-101", "safe"), checkin("1-1-102", "abnormal", fever=True),
            checkin("1-1-101", "safe", DAY - timedelta(days=1)),
            checkin("1-1-102", "safe", DAY - timedelta(days=1)),
            checkin("1-2-101", "safe", DAY - timedelta(days=1)),
            checkin("2-1-101", "safe"),
        ])
        s.add_all([
            Escalation(kind="fever", household_id=hs["1-1-102"], resident_id=li.id, grid_id=g1.id,
                       status="open", summary="发热 38.2℃", text="38.2 有点咳嗽", temperature=38.2,
                       opened_at=at(DAY, 9), deadline_at=at(DAY, 9, 15)),
            Escalation(kind="missed", household_id=hs["1-1-201"], grid_id=g1.id, status="closed",
                       opened_at=at(DAY - timedelta(days=1), 12), closed_at=at(DAY - timedelta(days=1), 13)),
            Escalation(kind="fever", household_id=hs["3-1-101"], grid_id=g3.id, status="open",
                       opened_at=at(DAY, 8), temperature=37.9),
            ServiceRequest(category="groceries", items=["白菜", "鸡蛋"], household_id=hs["1-1-201"],
                           grid_id=g1.id, status="open", created_at=at(DAY, 10)),
            ServiceRequest(category="medicine", household_id=hs["1-1-201"], grid_id=g1.id, status="done",
                           created_at=at(DAY, 8)),
            ServiceRequest(category="garbage", household_id=hs["2-1-101"], grid_id=g2.id, status="taken",
                           created_at=at(DAY, 8)),
        ])

        def staff(uid: str, role: str, pw: bool = True) -> Staff:
            return Staff(name=f"员工{uid}", role=role, channel="wecom", channel_user_id=uid,
                         password_hash=hashed if pw else None)

        w1, w3, st, dist, nopw, vol = (staff("w1", "网格员"), staff("w3", "网格员"), staff("s1", "街道干部"),
                                       staff("d1", "街道值班"), staff("nopw", "网格员", pw=False),
                                       staff("v1", "志愿者"))
        s.add_all([w1, w3, st, dist, nopw, vol])
        await s.flush()
        s.add_all([
            StaffScope(staff_id=w1.id, grid_id=g1.id), StaffScope(staff_id=w3.id, grid_id=g3.id),
            StaffScope(staff_id=st.id, street_id=sa.id), StaffScope(staff_id=dist.id),
            StaffScope(staff_id=nopw.id, grid_id=g1.id),
            # A grid role never reaches beyond its grids, even with a street row in its scope.
            StaffScope(staff_id=vol.id, grid_id=g2.id), StaffScope(staff_id=vol.id, street_id=sb.id),
        ])
        return {"w1": w1.id, "g1": g1.id}


def make_runtime(db: Database, clock: FakeClock, state: MemoryState | None = None) -> Runtime:
    return Runtime(settings=Settings(database_url=db.url), db=db, clock=clock, state=state or MemoryState())


@pytest.fixture
def make_client(aiohttp_client, clock):
    async def make(db: Database, state: MemoryState | None = None):
        rt = make_runtime(db, clock, state)
        app = web.Application()
        setup_web(app, rt)
        return await aiohttp_client(app)

    return make


@pytest.fixture
def clock():
    return FakeClock(at(DAY, 20))


async def login(client, user: str = "w1", password: str = PASSWORD, status: int = 200):
    resp = await client.post("/api/login", json={"user": user, "password": password})
    assert resp.status == status, await resp.text()
    return resp


# --- login, sessions, slowing ---------------------------------------------------------------------


async def test_login_ok_sets_a_strict_httponly_cookie(sqlite_db, make_client):
    await seed(sqlite_db)
    client = await make_client(sqlite_db)
    resp = await client.get("/api/me")
    assert resp.status == 401
    assert resp.headers["Cache-Control"] == "no-store"
    resp = await login(client)
    cookie = resp.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert len(cookie.value) >= 40
    assert resp.headers["Cache-Control"] == "no-store"
    me = await (await client.get("/api/me")).json()
    assert me["name"] == "员工w1" and me["role"] == "网格员" and me["today"] == "2026-02-10"
    assert [g["grid"] for g in me["grids"]] == [G1]
    async with sqlite_db.session() as s:
        events = (await s.scalars(select(AuditEvent).order_by(AuditEvent.id))).all()
    assert [(e.action, e.target) for e in events] == [("login", "w1")]
    assert PASSWORD not in repr(events[0].detail)


async def test_wrong_password_and_unknown_user_get_the_same_401(sqlite_db, make_client):
    await seed(sqlite_db)
    client = await make_client(sqlite_db)
    wrong = await login(client, "w1", "not-the-password", status=401)
    unknown = await login(client, "nobody", PASSWORD, status=401)
    nopw = await login(client, "nopw", "", status=400)  # an empty password is not even tried
    nopw = await login(client, "nopw", PASSWORD, status=401)
    assert await wrong.json() == await unknown.json() == await nopw.json() == {"error": "账号或密码错误"}
    assert COOKIE not in wrong.cookies
    assert (await client.get("/api/me")).status == 401
    async with sqlite_db.session() as s:
        events = (await s.scalars(select(AuditEvent).order_by(AuditEvent.id))).all()
    assert [(e.action, e.target, e.detail["reason"]) for e in events] == [
        ("login_failed", "w1", "password"), ("login_failed", "nobody", "unknown_user"),
        ("login_failed", "nopw", "no_password")]
    assert events[1].staff_id is None and events[0].staff_id is not None
    assert all(PASSWORD not in repr(e.detail) and "not-the-password" not in repr(e.detail) for e in events)


async def test_login_needs_json(sqlite_db, make_client):
    await seed(sqlite_db)
    client = await make_client(sqlite_db)
    resp = await client.post("/api/login", data={"user": "w1", "password": PASSWORD})
    assert resp.status == 415
    resp = await client.post("/api/login", data="{nope", headers={"Content-Type": "application/json"})
    assert resp.status == 400


async def test_brute_force_is_slowed_per_account(sqlite_db, make_client):
    """The details (exponential slowing, the address limit, proxies) are in test_logins.py."""
    await seed(sqlite_db)
    client = await make_client(sqlite_db)
    for _ in range(3):
        await login(client, "w1", "guess", status=401)
    resp = await login(client, "w1", PASSWORD, status=429)  # even the right password, while slowed
    assert 0 < int(resp.headers["Retry-After"]) <= 15 * 60
    await login(client, "s1", PASSWORD)  # another account from the same address is not
    async with sqlite_db.session() as s:
        actions = (await s.scalars(select(AuditEvent.action).order_by(AuditEvent.id))).all()
    assert actions == ["login_failed"] * 3 + ["login"]


async def test_logout_ends_the_session_on_the_server(sqlite_db, make_client):
    await seed(sqlite_db)
    client = await make_client(sqlite_db)
    token = (await login(client)).cookies[COOKIE].value
    assert (await client.get("/api/me")).status == 200
    resp = await client.post("/api/logout")
    assert resp.status == 200
    assert (await client.get("/api/me")).status == 401
    # The old token, replayed by hand, is dead too.
    resp = await client.get("/api/me", headers={"Cookie": f"{COOKIE}={token}"})
    assert resp.status == 401


async def test_a_new_password_ends_old_sessions(sqlite_db, make_client):
    ids = await seed(sqlite_db)
    client = await make_client(sqlite_db)
    await login(client)
    async with sqlite_db.session() as s:
        await s.execute(update(Staff).where(Staff.id == ids["w1"]).values(password_hash=hash_password("another-1")))
    assert (await client.get("/api/me")).status == 401


@pytest.mark.redis
async def test_sessions_and_failures_are_shared_through_redis(sqlite_db, make_client, redis_client):
    """Two processes on one Redis: a session opened on one works on the other, failures add up."""
    from bot.state import RedisState

    await seed(sqlite_db)
    one = await make_client(sqlite_db, RedisState(redis_client, prefix=redis_client.test_prefix))
    two = await make_client(sqlite_db, RedisState(redis_client, prefix=redis_client.test_prefix))
    token = (await login(one)).cookies[COOKIE].value
    resp = await two.get("/api/me", headers={"Cookie": f"{COOKIE}={token}"})
    assert resp.status == 200 and (await resp.json())["name"] == "员工w1"
    assert await redis_client.keys(redis_client.test_prefix + "dash:session:*")
    assert not [k for k in await redis_client.keys(redis_client.test_prefix + "*") if token.encode() in k]
    for client in (one, two, one):
        await login(client, "s1", "guess", status=401)
    resp = await login(two, "s1", PASSWORD, status=429)
    assert int(resp.headers["Retry-After"]) > 0
    await two.post("/api/logout", headers={"Cookie": f"{COOKIE}={token}"})
    assert (await one.get("/api/me", headers={"Cookie": f"{COOKIE}={token}"})).status == 401


# --- scope and data --------------------------------------------------------------------------------


async def test_grid_worker_gets_their_ledger_and_403_elsewhere(sqlite_db, make_client):
    await seed(sqlite_db)
    client = await make_client(sqlite_db)
    await login(client)
    resp = await client.get("/api/ledger", params={"grid": G1, "date": "2026-02-10"})
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
    g = await resp.json()
    assert g == {"grid": G1, "households": 4, "reported": 2, "safe": 1, "abnormal": 1,
                 "unreported": ["1-1-201", "1-2-101"], "fevers": 1, "quarantined": 1, "missed_reports": 0,
                 "open_escalations": 1, "open_requests": 1}
    yesterday = await (await client.get("/api/ledger", params={"grid": G1, "date": "2026-02-09"})).json()
    assert (yesterday["reported"], yesterday["unreported"]) == (3, ["1-1-201"])
    # Without a date: today by the runtime's clock.
    assert (await (await client.get("/api/ledger", params={"grid": G1})).json()) == g
    assert (await client.get("/api/ledger", params={"grid": G2})).status == 403
    assert (await client.get("/api/ledger", params={"grid": G3})).status == 403
    assert (await client.get("/api/ledger", params={"grid": "没有的网格"})).status == 404
    assert (await client.get("/api/ledger", params={"grid": G1, "date": "2026-13-01"})).status == 400
    for path in ("/api/escalations", "/api/requests", "/api/residents", "/api/quarantines", "/api/rates",
                 "/api/ledger.xlsx"):
        assert (await client.get(path, params={"grid": G3})).status == 403, path


async def test_lists_for_a_grid_worker(sqlite_db, make_client):
    await seed(sqlite_db)
    client = await make_client(sqlite_db)
    await login(client)
    esc = await (await client.get("/api/escalations")).json()
    assert esc["total"] == 1
    (e,) = esc["items"]
    assert (e["code"][0], e["kind"], e["household"], e["level"], e["status"], e["resident"]) == \
        ("E", "fever", "1-1-102", 0, "open", "李四")
    assert e["opened_at"] == "2026-02-10T09:00:00+08:00" and e["temperature"] == 38.2
    every = await (await client.get("/api/escalations", params={"status": "all"})).json()
    assert sorted(x["status"] for x in every["items"]) == ["closed", "open"]
    assert (await client.get("/api/escalations", params={"status": "bogus"})).status == 400

    req = await (await client.get("/api/requests")).json()
    assert [(r["category"], r["items"], r["household"], r["status"]) for r in req["items"]] == [
        ("groceries", ["白菜", "鸡蛋"], "1-1-201", "open")]
    done = await (await client.get("/api/requests", params={"status": "done"})).json()
    assert [r["category"] for r in done["items"]] == ["medicine"]

    res = await (await client.get("/api/residents", params={"grid": G1})).json()
    assert res["total"] == 3
    rows = {r["name"]: r for r in res["items"]}
    assert rows["张三"] == {"grid": G1, "household": "1-1-101", "name": "张三", "category": "常住",
                          "phone": "138****5678", "bound": True}
    assert rows["李四"]["phone"] == "" and rows["李四"]["bound"] is False
    assert rows["王五"]["phone"] == "139****1111"
    assert "13812345678" not in await (await client.get("/api/residents")).text()

    qua = await (await client.get("/api/quarantines")).json()
    (q,) = qua["items"]
    calendar = q.pop("calendar")
    assert q == {"id": 1, "grid": G1, "household": "1-1-201", "name": "王五", "start": "2026-02-06",
                 "days": 14, "ends": "2026-02-19", "day": 5, "state": "active", "released_at": None}
    # 14 days × the two reminder slots; 王五 never answered: missed until now (20:00 on day 5), then to come
    assert [d["date"] for d in calendar][:2] == ["2026-02-06", "2026-02-07"] and len(calendar) == 14
    assert [[c["state"] for c in d["slots"]] for d in calendar[3:6]] == [
        ["missed", "missed"], ["missed", "missed"], ["pending", "pending"]]

    rates = await (await client.get("/api/rates", params={"grid": G1, "days": 28})).json()
    assert len(rates["items"]) == 28 and rates["households"] == 4
    assert rates["items"][-1] == {"date": "2026-02-10", "households": 4, "reported": 2, "rate": 0.5}
    assert rates["items"][-2] == {"date": "2026-02-09", "households": 4, "reported": 3, "rate": 0.75}
    assert rates["items"][0]["date"] == "2026-01-14" and rates["items"][0]["reported"] == 0


async def test_xlsx_download_is_a_workbook(sqlite_db, make_client):
    await seed(sqlite_db)
    client = await make_client(sqlite_db)
    await login(client)
    resp = await client.get("/api/ledger.xlsx", params={"grid": G1, "date": "2026-02-10"})
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/vnd.openxmlformats")
    assert "attachment" in resp.headers["Content-Disposition"]
    wb = openpyxl.load_workbook(io.BytesIO(await resp.read()))
    summary = list(wb["汇总"].iter_rows(values_only=True))
    assert summary[1][:9] == ("2026-02-10", G1, "文化东路社区", 4, 2, "50%", 1, 1, 2)
    assert [r for r in wb["未报户"].iter_rows(min_row=2, values_only=True)] == [
        ("2026-02-10", G1, "1-1-201"), ("2026-02-10", G1, "1-2-101")]
    homes = {r[4]: r for r in wb["住户台账"].iter_rows(min_row=2, values_only=True)}
    assert homes["102"][8:10] == ("发热", "38.2") and homes["201"][8] == "未报"
    assert [r[0] for r in wb["预警"].iter_rows(min_row=2, values_only=True)] == ["E1"]
    assert [r[2] for r in wb["隔离人员"].iter_rows(min_row=2, values_only=True)] == ["王五"]
    # A range, from= to date=; without grid=: every grid in scope, and only those.
    resp = await client.get("/api/ledger.xlsx", params={"from": "2026-02-09", "date": "2026-02-10"})
    assert "2026-02-09_2026-02-10" in resp.headers["Content-Disposition"]
    wb = openpyxl.load_workbook(io.BytesIO(await resp.read()))
    assert [r[:2] for r in wb["汇总"].iter_rows(min_row=2, values_only=True)] == [("2026-02-09", G1), ("2026-02-10", G1)]
    assert (await client.get("/api/ledger.xlsx", params={"from": "2025-01-01"})).status == 400


async def test_scope_by_role(db, make_client):
    """Street staff see every grid of their street, not another's; district staff see all; on both DBs."""
    await seed(db)
    street = await make_client(db)
    await login(street, "s1")
    me = await (await street.get("/api/me")).json()
    assert sorted(g["grid"] for g in me["grids"]) == sorted([G1, G2]) and not me["district"]
    assert (await street.get("/api/ledger", params={"grid": G2})).status == 200
    assert (await street.get("/api/ledger", params={"grid": G3})).status == 403
    overview = await (await street.get("/api/ledger", params={"date": "2026-02-10"})).json()
    assert [g["grid"] for g in overview["grids"]] == [G1, G2] and overview["date"] == "2026-02-10"
    esc = await (await street.get("/api/escalations")).json()
    assert [e["grid"] for e in esc["items"]] == [G1]
    req = await (await street.get("/api/requests")).json()
    assert sorted(r["grid"] for r in req["items"]) == sorted([G1, G2])
    qua = await (await street.get("/api/quarantines")).json()
    assert [q["name"] for q in qua["items"]] == ["王五"]
    rates = await (await street.get("/api/rates", params={"days": 2})).json()
    assert rates["households"] == 6 and rates["items"][-1]["reported"] == 3

    district = await make_client(db)
    await login(district, "d1")
    me = await (await district.get("/api/me")).json()
    assert me["district"] and [g["grid"] for g in me["grids"]] == sorted([G1, G2, G3])
    assert (await district.get("/api/ledger", params={"grid": G3})).status == 200
    esc = await (await district.get("/api/escalations")).json()
    assert sorted(e["grid"] for e in esc["items"]) == sorted([G1, G3])

    other = await make_client(db)
    await login(other, "w3")
    assert [g["grid"] for g in (await (await other.get("/api/me")).json())["grids"]] == [G3]
    assert (await other.get("/api/ledger", params={"grid": G1})).status == 403
    res = await (await other.get("/api/residents")).json()
    assert [(r["name"], r["phone"]) for r in res["items"]] == [("赵六", "137****2222")]

    volunteer = await make_client(db)
    await login(volunteer, "v1")
    assert [g["grid"] for g in (await (await volunteer.get("/api/me")).json())["grids"]] == [G2]
    assert (await volunteer.get("/api/ledger", params={"grid": G3})).status == 403


@pytest.mark.parametrize(("phone", "masked"), [
    ("13812345678", "138****5678"), ("+8613812345678", "+86****5678"), ("138 1234 5678", "138****5678"),
    ("6612345", "66****45"), ("12345", "****"), (None, ""), ("", ""),
])
def test_mask_phone(phone, masked):
    assert mask_phone(phone) == masked


# --- the page ---------------------------------------------------------------------------------------


async def test_dashboard_page_serves_the_login_form(sqlite_db, make_client):
    client = await make_client(sqlite_db)
    resp = await client.get("/dashboard", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/dashboard/"
    resp = await client.get("/dashboard/")
    assert resp.status == 200 and resp.content_type == "text/html"
    html = await resp.text()
    assert 'id="login-form"' in html and 'type="password"' in html and "导出Excel" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # nothing from outside
    assert "https://" not in html and "innerHTML" not in html
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'sha256-" in csp and "default-src 'none'" in csp


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt-get install -y chromium)")
async def test_browser_renders_the_ledger(sqlite_db, clock, tmp_path, unused_tcp_port_factory):
    """A real browser loads the page with a session, runs the JS, and shows the grid's data."""
    await seed(sqlite_db)
    rt = make_runtime(sqlite_db, clock)
    app = web.Application()
    setup_web(app, rt)

    async def test_login(request: web.Request) -> web.StreamResponse:
        # Test-only: logs in through the real endpoint, then hands the cookie to the browser.
        resp = await app_client.post("/api/login", json={"user": "w1", "password": PASSWORD})
        token = resp.cookies[COOKIE].value
        out = web.HTTPFound("/dashboard/")
        out.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
        raise out

    app.router.add_get("/test-login", test_login)
    runner = web.AppRunner(app)
    await runner.setup()
    port = unused_tcp_port_factory()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    import aiohttp

    app_client = aiohttp.ClientSession(f"http://127.0.0.1:{port}")
    try:
        import asyncio

        proc = await asyncio.create_subprocess_exec(
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path}/profile",
            "--virtual-time-budget=8000", "--dump-dom", f"http://127.0.0.1:{port}/test-login",
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        dom, _ = await asyncio.wait_for(proc.communicate(), 60)
        text = dom.decode("utf-8")
    finally:
        await app_client.close()
        await runner.cleanup()
    assert "员工w1" in text
    assert "1-2-101" in text and "李四" in text and "第5天/共14天" in text
    assert "<svg" in text and "<rect" in text
