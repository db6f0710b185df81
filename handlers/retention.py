"""Retention: health details are kept only as long as they are needed (the nightly `retention` timer).

`GRIDBOT_RETENTION_DAYS` (default 28) after a person's quarantine is released (and they are in no
other), the health details of their reports are purged: temperatures, symptoms and the words of
their check-ins, and the words, summary, reading and note of their escalations. Inbound message
texts and sent message texts older than that many days are blanked too, whoever they are from.

The rows stay, with their status, fever flag, dates, household and codes, so the ledger's counts
(reported, safe, abnormal, fevers, missed reports, escalations) for past days do not change; only
what was said and measured is gone. Every step is a conditional UPDATE, so the sweep is idempotent
and a second run changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

from sqlalchemy import String, and_, cast, or_, select, update

from bot.dispatch import Router, Tick
from bot.model import Outbound
from storage.models import CheckIn, Escalation, InboundMessage, OutboundMessage, Quarantine

log = logging.getLogger(__name__)
router = Router("retention")
PURGED = ""


@router.timer("retention")
async def purge(tick: Tick) -> AsyncIterator[Sequence[Outbound]]:
    days = tick.settings.retention_days
    cutoff = tick.now - timedelta(days=days)
    ses = tick.s
    released = set((await ses.scalars(select(Quarantine.resident_id).where(
        Quarantine.released_at.is_not(None), Quarantine.released_at < cutoff))).all())
    still = set((await ses.scalars(select(Quarantine.resident_id).where(
        or_(Quarantine.released_at.is_(None), Quarantine.released_at >= cutoff)))).all())
    people = sorted(released - still)
    checkins = escalations = 0
    for i in range(0, len(people), 500):
        part = people[i:i + 500]
        person_keys = [f"r{rid}" for rid in part]
        checkins += (await ses.execute(
            update(CheckIn)
            .where(or_(CheckIn.resident_id.in_(part), CheckIn.person.in_(person_keys)),
                   or_(CheckIn.temperature.is_not(None), CheckIn.text != PURGED, cast(CheckIn.symptoms, String) != "[]"))
            .values(temperature=None, symptoms=[], text=PURGED)
            .execution_options(synchronize_session=False))).rowcount or 0
        escalations += (await ses.execute(
            update(Escalation)
            .where(Escalation.resident_id.in_(part),
                   or_(Escalation.text != PURGED, Escalation.summary != PURGED, Escalation.temperature.is_not(None),
                       Escalation.note.is_not(None)))
            .values(text=PURGED, summary=PURGED, temperature=None, note=None)
            .execution_options(synchronize_session=False))).rowcount or 0
    inbound = (await ses.execute(
        update(InboundMessage).where(InboundMessage.received_at < cutoff, InboundMessage.text != PURGED,
                                     InboundMessage.status != "pending")
        .values(text=PURGED).execution_options(synchronize_session=False))).rowcount or 0
    outbound = (await ses.execute(
        update(OutboundMessage).where(and_(OutboundMessage.created_at < cutoff, OutboundMessage.text != PURGED,
                                           OutboundMessage.status.in_(("sent", "failed", "unreachable"))))
        .values(text=PURGED).execution_options(synchronize_session=False))).rowcount or 0
    note = (f"retention {days} days: {len(people)} people released before {cutoff:%Y-%m-%d}; purged the details "
            f"of {checkins} check-ins and {escalations} escalations, the texts of {inbound} inbound and "
            f"{outbound} sent messages")
    tick.notes.append(note)
    log.info("%s", note)
    yield []
