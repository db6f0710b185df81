"""The outbox sender: claims due rows, paces them under each platform's limits, delivers, records.

At-least-once, not exactly-once, and why: a row is claimed (pending → sending, with a lease) in one
transaction, sent, and marked sent in another. A failed API call is never marked sent, and is
retried with backoff; a rate-limit answer (45009) is retried, never dropped. The one gap is a
process that dies AFTER the platform accepted a message and BEFORE it recorded "sent": when the
lease runs out the row is sent again. Closing that gap would need the platform to deduplicate on
our id — the bridge gets the outbox id for exactly that; WeCom offers nothing similar, and one rare
duplicate is better than a lost fever alert. Timeouts are the same ambiguity and get the same answer.

On PostgreSQL several senders may run (`FOR UPDATE SKIP LOCKED` on the claim); on SQLite one.

An escalation's alert that fails for good (its channel is not configured here, the platform refused
it, or a day of retries ran out) is sent again, same text, on the staff member's next channel (the
roster's 渠道 "wecom、bridge"; handlers/people.py `next_contact`), as a new outbox row. With no
channel left the row is "unreachable": an ERROR names the escalation and the staff id (never the
text), it is counted, /healthz says degraded, and the escalation goes up its chain at once — its
deadline is set to now and the escalation sweep runs — instead of after its 15 minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.channels.base import Delivery, SendError
from bot.model import Outbound, TimerEvent
from bot.outbox import alert_of, enqueue, priority_of
from storage.models import Escalation, InboundMessage, OutboundMessage, Staff

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)


def backoff(attempts: int) -> float:
    return min(600.0, 2.0 * 2 ** max(0, attempts - 1))


class Sender:
    def __init__(self, runtime: Runtime, batch: int = 100, concurrency: int = 16, lease_s: float = 120.0,
                 max_age: timedelta = timedelta(hours=24), poll_s: float = 1.0):
        self.rt = runtime
        self.batch = batch
        self.concurrency = concurrency
        self.lease = timedelta(seconds=lease_s)
        self.max_age = max_age
        self.poll_s = poll_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def wake(self) -> None:
        self._wake.set()

    async def _claim(self) -> list[Delivery]:
        """Claims up to `batch` due rows, most urgent first (`priority`, then id: an alert overtakes
        a backlog of confirmations), with any earlier due row of the same recipients (a person
        still reads their messages in the order they were written)."""
        now = self.rt.clock.now()
        t = OutboundMessage
        lock = not self.rt.db.is_sqlite
        async with self.rt.db.session() as s:

            async def take(q):  # noqa: ANN001, ANN202
                if lock:
                    q = q.with_for_update(skip_locked=True)
                return list((await s.scalars(q)).all())

            # Two scans, each along its index: pending rows by (priority, id), and 'sending' rows
            # whose lease ran out (they belong to a sender that died mid-way).
            rows = await take(select(t).where(t.status == "pending", t.next_attempt_at <= now)
                              .order_by(t.priority, t.id).limit(self.batch))
            rows += await take(select(t).where(t.status == "sending", t.next_attempt_at <= now)
                               .order_by(t.next_attempt_at).limit(self.batch))
            rows = sorted(rows, key=lambda r: (r.priority, r.id))[: self.batch]
            if not rows:
                return []
            ids = {r.id for r in rows}
            users = {(r.channel, r.to_user) for r in rows if r.to_user}
            if users:
                earlier = await take(select(t).where(
                    t.status == "pending", t.next_attempt_at <= now, t.to_user.in_({u for _c, u in users}),
                    t.id < max(ids)).order_by(t.id).limit(self.batch))
                rows += [r for r in earlier if r.id not in ids and (r.channel, r.to_user) in users]
            for r in rows:
                r.status = "sending"
                r.next_attempt_at = now + self.lease
            inbound_ids = {r.inbound_id for r in rows if r.inbound_id}
            chats: dict[int, str | None] = {}
            if inbound_ids:
                chats = dict((await s.execute(select(InboundMessage.id, InboundMessage.chat_id)
                                              .where(InboundMessage.id.in_(inbound_ids)))).all())
            return [Delivery.of(r, (chats.get(r.inbound_id) or "") if r.inbound_id else None) for r in rows]

    async def run_once(self) -> int:
        """Claims one batch of due rows and delivers it; returns the number of rows claimed."""
        deliveries = await self._claim()
        if not deliveries:
            return 0
        # Per recipient, in order (a person reads replies in the order they were written); recipients
        # in parallel.
        queues: dict[tuple, list[list[Delivery]]] = defaultdict(list)
        for d in sorted(deliveries, key=lambda d: d.id):
            key = (d.channel, d.to_user, d.to_chat)
            ch = self.rt.channels.get(d.channel)
            group = queues[key]
            # A channel that can post only once per inbound (the AI bot's response_url) gets one
            # post with all the replies for it.
            if (getattr(ch, "joins_replies", False) and d.reply_to and group and group[-1][0].reply_to == d.reply_to):
                group[-1].append(d)
            else:
                group.append([d])
        results: dict[int, tuple[str, str | None, float]] = {}
        sem = asyncio.Semaphore(self.concurrency)

        async def run(items: list[list[Delivery]]) -> None:
            async with sem:
                blocked: float | None = None
                for ds in items:
                    if blocked is not None:
                        for d in ds:
                            results[d.id] = ("later", None, blocked)
                        continue
                    outcome = await self._deliver(ds)
                    for d in ds:
                        results[d.id] = outcome
                    if outcome[0] in ("retry", "later"):
                        blocked = outcome[2]  # keep this recipient's later messages behind it

        # The most urgent recipients start first (the semaphore lets `concurrency` run at once).
        order = sorted(queues.values(), key=lambda items: min(priority_of(d.kind) for ds in items for d in ds))
        await asyncio.gather(*(run(items) for items in order))
        await self._record(results)
        return len(deliveries)

    async def _deliver(self, ds: list[Delivery]) -> tuple[str, str | None, float]:
        """('sent'|'retry'|'later'|'failed', error, delay seconds)."""
        d = ds[0] if len(ds) == 1 else replace(ds[0], text="\n\n".join(x.text for x in ds))
        ch = self.rt.channels.get(d.channel)
        metrics = getattr(self.rt, "metrics", None)
        if ch is None:
            if metrics is not None:
                metrics.send_failures.labels(d.channel, "not_configured").inc()
            return ("failed", f"channel {d.channel!r} is not configured", 0.0)
        try:
            wait = await ch.pace(d)
            if wait > 0:
                return ("later", None, wait)
            await ch.send(d)
        except SendError as exc:
            if metrics is not None:
                metrics.send_failures.labels(d.channel, exc.reason.split(":")[0][:40]).inc()
            if exc.permanent:
                log.warning("outbox %s: permanent failure on %s (%s)", d.id, d.channel, exc.reason)
                return ("failed", exc.reason, 0.0)
            delay = exc.retry_after if exc.retry_after is not None else backoff(d.attempts + 1)
            log.info("outbox %s: %s on %s, retry in %.0f s", d.id, exc.reason, d.channel, delay)
            return ("retry", exc.reason, delay)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - an adapter bug must not stop the sender
            if metrics is not None:
                metrics.send_failures.labels(d.channel, "error").inc()
            log.exception("outbox %s: unexpected %s on %s", d.id, type(exc).__name__, d.channel)
            return ("retry", type(exc).__name__, backoff(d.attempts + 1))
        return ("sent", None, 0.0)

    async def _record(self, results: dict[int, tuple[str, str | None, float]]) -> None:
        now = self.rt.clock.now()
        hurry = False
        async with self.rt.db.session() as s:
            rows = (await s.scalars(select(OutboundMessage).where(OutboundMessage.id.in_(results)))).all()
            for r in rows:
                outcome, error, delay = results[r.id]
                if outcome == "sent":
                    r.status, r.sent_at, r.last_error = "sent", now, None
                    r.attempts += 1
                elif outcome == "failed":
                    r.status, r.last_error = "failed", error
                    r.attempts += 1
                elif outcome == "later":  # paced: not an attempt
                    r.status, r.next_attempt_at = "pending", now + timedelta(seconds=delay)
                else:
                    r.attempts += 1
                    r.last_error = error
                    if now - r.created_at > self.max_age:
                        r.status = "failed"
                        r.last_error = f"gave up after {r.attempts} attempts: {error}"
                    else:
                        r.status, r.next_attempt_at = "pending", now + timedelta(seconds=delay)
            failed = [r for r in rows if r.status == "failed" and r.kind == "escalation"]
            if failed:
                hurry = await self._fall_back(s, failed, now)
        if hurry:
            await self._hurry(now)

    async def _fall_back(self, s: AsyncSession, rows: list[OutboundMessage], now: datetime) -> bool:
        """Re-sends failed escalation alerts on their recipient's next channel; marks those with
        none left unreachable and moves their escalations' deadlines to now. True if it moved one."""
        from handlers import people

        again: dict[int | None, list[Outbound]] = defaultdict(list)
        moved = False
        metrics = getattr(self.rt, "metrics", None)
        for r in rows:
            alert = alert_of(r.kind, r.dedup_key)
            if alert is None:
                continue
            esc_id, staff_id = alert
            staff = await s.get(Staff, staff_id)
            nxt = people.next_contact(staff, r.channel, r.to_user) if staff is not None else None
            if nxt is not None:
                again[r.inbound_id].append(Outbound(channel=nxt[0], to_user=nxt[1], text=r.text, kind=r.kind,
                                      dedup_key=f"{r.dedup_key}>{nxt[0]}"))
                log.warning("outbox %s: alert of escalation E%s to staff %s failed on %s; trying %s",
                            r.id, esc_id, staff_id, r.channel, nxt[0])
                continue
            r.status = "unreachable"
            tried = ", ".join(ch for ch, _ in people.contacts(staff)) if staff is not None else r.channel
            log.error("escalation E%s: alert to staff %s could not be delivered on any channel (%s); "
                      "moving the escalation up now", esc_id, staff_id, tried)
            if metrics is not None:
                metrics.alerts_undeliverable.inc()
            # Only an escalation nobody has acknowledged moves (one statement: an ack that commits
            # meanwhile is not undone).
            res = await s.execute(update(Escalation).where(
                Escalation.id == esc_id, Escalation.status == "open", Escalation.deadline_at.is_not(None))
                .values(deadline_at=now).execution_options(synchronize_session=False))
            moved = moved or bool(res.rowcount)
        for inbound_id, outs in again.items():  # the same cause as the failed row
            await enqueue(s, outs, now, inbound_id=inbound_id)
        return moved

    async def _hurry(self, now: datetime) -> None:
        """The escalation sweep, now: escalations whose alerts went nowhere climb at once."""
        from bot.timers import fire_event

        try:
            await fire_event(self.rt, TimerEvent("escalation-sweep", now))
        except Exception as exc:  # noqa: BLE001 - the scheduler's own sweep comes within a minute
            log.warning("escalation sweep after an undeliverable alert failed (%s); the next sweep runs it",
                        type(exc).__name__)

    async def deliver_due(self, max_rounds: int = 1000) -> int:
        """Delivers until nothing is due now (handle_now, the demo, tests)."""
        total = 0
        for _ in range(max_rounds):
            n = await self.run_once()
            if not n:
                break
            total += n
        return total

    # -- background ------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="outbox-sender")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        delay = self.poll_s
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()
            try:
                while await self.run_once() >= self.batch:
                    pass
                delay = self.poll_s
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - database down: retry, slower
                log.warning("outbox sender: %s; retrying", type(exc).__name__)
                delay = min(30.0, max(delay, 1.0) * 2)
