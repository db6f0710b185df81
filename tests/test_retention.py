"""Retention: GRIDBOT_RETENTION_DAYS after release, a person's health details are purged by the nightly
`retention` timer; old message texts too; the ledger's counts stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from scheduler.jobs import daily_times, run_job_detail
from storage.ledger import compute_ledger
from storage.models import CheckIn, Escalation, Grid, InboundMessage, Quarantine
from tests.test_scheduler_jobs import START, at, make_runtime, seed


async def _facts(db, ids):
    async with db.session() as s:
        day = START + timedelta(days=1)
        wang, li = ids["wang"], ids["li"]
        for rid, hh in ((wang, ids["h501"]), (li, ids["h502"])):
            s.add(CheckIn(household_id=hh, resident_id=rid, person=f"r{rid}", date=day, slot="am", status="abnormal",
                          temperature=38.4, fever=True, symptoms=["咳嗽"], text="38.4 有点咳嗽",
                          created_at=at(day, 9), updated_at=at(day, 9)))
            s.add(Escalation(kind="fever", household_id=hh, resident_id=rid, grid_id=await s.scalar(select(Grid.id)),
                             status="closed", summary="发热 38.4℃", text="38.4 有点咳嗽", temperature=38.4,
                             note="已送医", opened_at=at(day, 9)))
        s.add(InboundMessage(channel="wecom", msg_id="m1", sender_id="u-wangfang", text="38.4 有点咳嗽",
                             sent_at=at(day, 9), received_at=at(day, 9), status="done"))
        # 王芳's quarantine was released on day 3; 李's never was quarantined (ids["li"]).
        q = await s.scalar(select(Quarantine).where(Quarantine.resident_id == wang))
        q.released_at = at(START + timedelta(days=3), 10)


async def test_health_details_of_people_released_long_ago_are_purged_and_counts_stay(db):
    ids = await seed(db)
    await _facts(db, ids)
    rt = make_runtime(db, at(START, 8))
    day = START + timedelta(days=1)
    async with db.session() as s:
        before = await compute_ledger(s, day, rt.settings.tz)

    soon = await run_job_detail("retention", rt, at(START + timedelta(days=3 + 27), 3, 30))
    assert "0 people released" in soon.notes[0]
    async with db.session() as s:
        assert all(c.temperature == 38.4 for c in (await s.scalars(select(CheckIn))).all())

    fired = await run_job_detail("retention", rt, at(START + timedelta(days=3 + 29), 3, 30))
    assert fired.messages == 0 and "1 people released" in fired.notes[0]
    async with db.session() as s:
        rows = {c.resident_id: c for c in (await s.scalars(select(CheckIn))).all()}
        escs = {e.resident_id: e for e in (await s.scalars(select(Escalation))).all()}
        inbound = await s.scalar(select(InboundMessage))
        after = await compute_ledger(s, day, rt.settings.tz)
    w, li = rows[ids["wang"]], rows[ids["li"]]
    assert (w.temperature, w.symptoms, w.text, w.status, w.fever) == (None, [], "", "abnormal", True)
    assert (li.temperature, li.text) == (38.4, "38.4 有点咳嗽")  # never released: kept
    e = escs[ids["wang"]]
    assert (e.text, e.summary, e.temperature, e.note, e.status, e.kind) == ("", "", None, None, "closed", "fever")
    assert escs[ids["li"]].text == "38.4 有点咳嗽"
    assert inbound.text == "" and inbound.msg_id == "m1"  # older than 28 days
    assert after == before  # the ledger's counts for that day are unchanged
    again = await run_job_detail("retention", rt, at(START + timedelta(days=3 + 30), 3, 30))
    assert "purged the details of 0 check-ins and 0 escalations" in again.notes[0]


def test_retention_runs_nightly():
    from bot.config import Settings

    assert [t.strftime("%H:%M") for t in daily_times(Settings())["retention"]] == ["03:30"]
    assert Settings().retention_days == 28
