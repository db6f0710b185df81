"""The page's actions as JSON routes: CSRF, scope, unknown codes, and the chat commands' own effects."""

from __future__ import annotations

import pytest
from aiohttp import web
from sqlalchemy import func, select

from bot.state import MemoryState
from bot.web import setup_web
from storage.models import AuditEvent, Escalation, OutboundMessage, Quarantine, Resident, ServiceRequest
from tests.test_dashboard import G1, G3, make_runtime, seed
from tests.test_dashboard import login as _login

ROUTES = [("/api/escalations/E1/ack", None), ("/api/escalations/E1/close", {"note": "已处理"}),
          ("/api/requests/R1/take", None), ("/api/requests/R1/done", {"note": "已送到"}),
          ("/api/quarantines", {"household": "1-1-101"}), ("/api/quarantines/1/release", None)]


class FakeSender:
    def __init__(self) -> None:
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1


@pytest.fixture
def make_client(aiohttp_client, clock):
    async def make(db, sender=None):
        rt = make_runtime(db, clock, MemoryState())
        rt.sender = sender
        app = web.Application()
        setup_web(app, rt)
        return await aiohttp_client(app)

    return make


async def login(client, user: str = "w1") -> dict[str, str]:
    """Logs in; the headers a page sends with a change (the CSRF token of GET /api/me)."""
    await _login(client, user)
    me = await (await client.get("/api/me")).json()
    assert len(me["csrf"]) == 64
    return {"X-CSRF-Token": me["csrf"]}


async def post(client, path: str, headers: dict[str, str], body: dict | None = None, status: int = 200) -> dict:
    resp = await client.post(path, json=body, headers=headers) if body is not None else \
        await client.post(path, headers=headers)
    data = await resp.json()
    assert resp.status == status, (path, data)
    return data


async def outbox(db) -> list[tuple[str | None, str]]:
    async with db.session() as s:
        return [(r.to_user, r.text) for r in (await s.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))]


async def audits(db) -> list[tuple[str, str | None]]:
    async with db.session() as s:
        return [(e.action, e.target) for e in (await s.scalars(
            select(AuditEvent).where(AuditEvent.action != "login").order_by(AuditEvent.id)))]


async def test_every_action_needs_a_session_and_the_csrf_token(sqlite_db, make_client):
    await seed(sqlite_db)
    client = await make_client(sqlite_db)
    for path, body in ROUTES:
        assert (await client.post(path, json=body)).status == 401, path
    headers = await login(client)
    for path, body in ROUTES:
        for bad in ({}, {"X-CSRF-Token": "0" * 64}, {"X-CSRF-Token": headers["X-CSRF-Token"][:-1]}):
            resp = await client.post(path, json=body, headers=bad)
            assert resp.status == 403, (path, bad)
            assert "刷新" in (await resp.json())["error"]
    # Nothing happened.
    assert await outbox(sqlite_db) == [] and await audits(sqlite_db) == []
    async with sqlite_db.session() as s:
        assert (await s.get(Escalation, 1)).status == "open"
    # Another session's token is not this one's.
    other = await make_client(sqlite_db)
    theirs = await login(other)
    assert theirs != headers
    assert (await client.post("/api/escalations/E1/ack", headers=theirs)).status == 403


async def test_acknowledge_then_close_like_the_chat_command(db, make_client):
    """收到 from the page: the chain hears it (the other grid worker), the audit says so, the
    acting worker's own confirmation is the answer, not a chat message; a second 收到 sends nothing."""
    await seed(db)
    sender = FakeSender()
    client = await make_client(db, sender)
    headers = await login(client)
    data = await post(client, "/api/escalations/E1/ack", headers)
    assert data["ok"] and data["changed"] and data["status"] == "acked" and data["code"] == "E1"
    assert "已确认 E1" in data["reply"] and data["sent"] == 1
    assert await outbox(db) == [("nopw", "E1 已由网格员员工w1确认处理。")]
    assert sender.woken == 1
    assert await audits(db) == [("escalation.ack", "E1")]

    again = await post(client, "/api/escalations/E1/ack", headers)
    assert again["changed"] is False and again["sent"] == 0 and "已由员工w1" in again["reply"]
    assert len(await outbox(db)) == 1 and sender.woken == 1

    done = await post(client, "/api/escalations/e1/close", headers, {"note": "已送发热门诊"})
    assert done["changed"] and done["status"] == "closed" and done["note"] == "已送发热门诊"
    async with db.session() as s:
        esc = await s.get(Escalation, 1)
        assert (esc.status, esc.note, esc.closed_by is not None) == ("closed", "已送发热门诊", True)
    assert await audits(db) == [("escalation.ack", "E1"), ("escalation.close", "E1")]
    closed_again = await post(client, "/api/escalations/E1/close", headers, {"note": "x"})
    assert closed_again["changed"] is False and "已办结" in closed_again["reply"]


async def test_close_tells_the_reporter_and_the_chain_when_nobody_had_acknowledged(sqlite_db, make_client):
    ids = await seed(sqlite_db)
    async with sqlite_db.session() as s:
        li = await s.scalar(select(Resident).where(Resident.name == "李四"))
        li.channel, li.channel_user_id = "wecom", "r-li"
    client = await make_client(sqlite_db)
    headers = await login(client)
    data = await post(client, "/api/escalations/E1/close", headers, {"note": "已电话联系"})
    assert data["status"] == "closed" and data["sent"] == 2
    sent = dict(await outbox(sqlite_db))
    assert "已电话联系" in sent["r-li"] and "E1" in sent["nopw"]
    assert ids["w1"]


async def test_unknown_codes_are_404_and_other_grids_403(sqlite_db, make_client):
    await seed(sqlite_db)
    client = await make_client(sqlite_db)
    headers = await login(client)
    for path in ("/api/escalations/E999/ack", "/api/escalations/xyz/ack", "/api/escalations/E999/close",
                 "/api/requests/R999/take", "/api/requests/R999/done", "/api/quarantines/999/release",
                 "/api/quarantines/abc/release"):
        assert (await client.post(path, headers=headers)).status == 404, path
    await post(client, "/api/quarantines", headers, {"household": "9-9-999"}, status=404)
    await post(client, "/api/quarantines", headers, {"household": "1-1-101", "name": "没这人"}, status=404)
    # E3 is G3's escalation, R3 G2's request, quarantine 2 赵六's in G3, 3-1-101 a G3 household.
    for path in ("/api/escalations/E3/ack", "/api/escalations/E3/close", "/api/requests/R3/take",
                 "/api/requests/R3/done", "/api/quarantines/2/release"):
        resp = await client.post(path, headers=headers)
        assert resp.status == 403, path
        assert "不在您负责" in (await resp.json())["error"]
    await post(client, "/api/quarantines", headers, {"household": "3-1-101"}, status=403)
    await post(client, "/api/quarantines", headers, {"household": ""}, status=400)
    await post(client, "/api/quarantines", headers, {"household": "1-1-101", "start": "2026-13-40"}, status=400)
    assert (await client.post("/api/escalations/E1/close", data="note", headers=headers)).status == 415
    assert await outbox(sqlite_db) == [] and await audits(sqlite_db) == []
    async with sqlite_db.session() as s:
        assert (await s.get(Escalation, 3)).status == "open"
        assert (await s.get(ServiceRequest, 3)).status == "taken"
        assert (await s.get(Quarantine, 2)).released_at is None
    # The street cadre of G1 and G2 may act on G1's escalation, and still not on G3's.
    street = await make_client(sqlite_db)
    sh = await login(street, "s1")
    assert (await post(street, "/api/escalations/E1/ack", sh))["status"] == "acked"
    await post(street, "/api/escalations/E3/ack", sh, status=403)
    district = await make_client(sqlite_db)
    assert (await post(district, "/api/escalations/E3/ack", await login(district, "d1")))["status"] == "acked"


async def test_take_and_finish_a_request(db, make_client):
    await seed(db)
    async with db.session() as s:
        wang = await s.scalar(select(Resident).where(Resident.name == "王五"))
        wang.channel, wang.channel_user_id = "wecom", "r-wang"
        (await s.get(ServiceRequest, 1)).resident_id = wang.id
    client = await make_client(db)
    headers = await login(client)
    data = await post(client, "/api/requests/R1/take", headers)
    assert data["status"] == "taken" and data["changed"] and "已接单 R1" in data["reply"]
    assert [u for u, _ in await outbox(db)] == ["r-wang"]
    assert "员工w1" in (await outbox(db))[0][1]
    again = await post(client, "/api/requests/R1/take", headers)
    assert again["changed"] is False and again["sent"] == 0
    done = await post(client, "/api/requests/R1/done", headers, {"note": "放在门口了"})
    assert done["status"] == "done" and done["note"] == "放在门口了"
    assert "放在门口了" in (await outbox(db))[-1][1]
    # a second 接单 by the one who has it records itself again, as in the chat; it tells nobody
    assert set(await audits(db)) == {("request.take", "R1"), ("request.done", "R1")}
    listed = await (await client.get("/api/requests", params={"status": "done"})).json()
    assert {r["code"] for r in listed["items"]} == {"R1", "R2"}


async def test_register_and_release_a_quarantine(sqlite_db, make_client):
    await seed(sqlite_db)
    client = await make_client(sqlite_db)
    headers = await login(client)
    data = await post(client, "/api/quarantines", headers, {"household": "1-1-101", "name": "张三",
                                                            "start": "2026-01-20"})
    assert data["changed"] and "已登记居家隔离：1-1-101 张三" in data["reply"]
    assert [(u, "居家隔离" in t) for u, t in await outbox(sqlite_db)] == [("r-zhang", True)]
    listed = await (await client.get("/api/quarantines", params={"grid": G1})).json()
    zhang = next(q for q in listed["items"] if q["name"] == "张三")
    assert zhang["state"] == "due_release" and zhang["ends"] == "2026-02-02"
    released = await post(client, f"/api/quarantines/{zhang['id']}/release", headers)
    assert released["released"] and released["changed"] and "已解除居家隔离：1-1-101 张三" in released["reply"]
    assert (await outbox(sqlite_db))[-1] == ("r-zhang", "您的居家隔离已于今日解除，感谢配合！")
    again = await post(client, f"/api/quarantines/{zhang['id']}/release", headers)
    assert again["changed"] is False and again["sent"] == 0
    async with sqlite_db.session() as s:
        assert (await s.scalar(select(Resident.category).where(Resident.name == "张三"))) == "常住"
        n = await s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action.like("quarantine.%")))
    assert n == 2
    assert G3  # the other grid's quarantine is covered by the 403 test


async def test_staff_report_for_a_household(db, make_client):
    """代报 from the page: the chat command's check-in (marked as the worker's) and, when abnormal,
    its escalation to the rest of the chain; scope and unknown households as elsewhere."""
    from storage.models import CheckIn

    await seed(db)
    client = await make_client(db)
    headers = await login(client)
    ok = await post(client, "/api/checkins", headers, {"household": "1-2-101", "text": "36.5 正常"})
    assert ok["changed"] and "1-2-101" in ok["reply"] and ok["sent"] == 0
    fever = await post(client, "/api/checkins", headers, {"household": "1-1-201", "text": "38.6 咳嗽"})
    assert "E4" in fever["reply"]
    assert [u for u, _ in await outbox(db)] == ["nopw"]  # the other worker of G1 hears it; w1 knows
    async with db.session() as s:
        rows = (await s.scalars(select(CheckIn).where(CheckIn.source == "staff").order_by(CheckIn.id))).all()
        esc = await s.get(Escalation, 4)
    assert [(r.status, r.temperature) for r in rows] == [("safe", 36.5), ("abnormal", 38.6)]
    assert esc.kind == "fever" and esc.grid_id is not None
    await post(client, "/api/checkins", headers, {"household": "3-1-101", "text": "36.5"}, status=403)
    await post(client, "/api/checkins", headers, {"household": "8-8-808", "text": "36.5"}, status=404)
    await post(client, "/api/checkins", headers, {"household": "1-2-101"}, status=400)
    assert (await client.post("/api/checkins", json={"household": "1-2-101", "text": "36.5"})).status == 403
