"""One message's way after its adapter: dedup → durable inbox → (callback answered) → worker:
errors → identity → per-sender lock → database session → handler → outbox.

Delivery guarantees, and why they hold:
- The callback is answered only once the message is an inbox row (`Inbox.add` commits first); a
  database that is down makes the callback answer 503 and the platform retries.
- A worker marks the inbox row done in the SAME transaction as the handlers' effects and the outbox
  rows they return; a worker that dies before that commit leaves the row pending, and it is taken
  again when its lease (`next_attempt_at`) runs out. So effects happen once and nothing is lost.
- On PostgreSQL the row is locked `FOR UPDATE SKIP LOCKED` for the whole transaction, so two
  processes (the stream and the sweep may both hand out a row) never run one message twice; on
  SQLite a single process runs, and an in-process set of rows in flight does the same.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import literal, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bot.dispatch import Context
from bot.inbox import HIGH, NORMAL, Inbox
from bot.model import Inbound
from bot.outbox import enqueue
from nlp import parse
from storage.models import Building, InboundMessage, Resident, Staff

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

DEDUP_TTL_S = 2 * 86400
# Kinds whose text is a resident's words: typed, a 接龙 list, a voice message's transcript.
READ_KINDS = ("text", "jielong", "voice")
# WeCom app and AI-bot users are the same WeCom userids: a resident bound on one is known on both.
# How old the map of staff's second channels may be when a sender is not found (`_alt_staff`).
ALT_TTL_S = 60.0
IDENTITY_CHANNELS = {"wecom": ("wecom", "aibot"), "aibot": ("aibot", "wecom")}


@dataclass
class Identity:
    """Who wrote, as ids (the objects are loaded again in the handler's own session)."""

    resident_id: int | None = None
    staff_id: int | None = None
    building_id: int | None = None


@dataclass
class Job:
    row_id: int
    inbound: Inbound | None = None
    identity: Identity = field(default_factory=Identity)
    session: AsyncSession | None = None
    conn: AsyncConnection | None = None
    outbound_ids: list[int] = field(default_factory=list)
    skipped: bool = False


Next = Callable[[Job], Awaitable[None]]
Middleware = Callable[[Job, Next], Awaitable[None]]


def _backoff(attempt: int) -> float:
    return min(600.0, 5.0 * 2 ** max(0, attempt - 1))


class Pipeline:
    def __init__(self, runtime: Runtime, inbox: Inbox, max_attempts: int = 5, workers: int = 2,
                 sweep_s: float = 1.0):
        self.rt = runtime
        self.inbox = inbox
        self.max_attempts = max_attempts
        self.n_workers = workers
        self.sweep_s = sweep_s
        self.metrics = getattr(runtime, "metrics", None)
        # Unbounded: a burst (the 08:00 wave) must reach the workers now, not after the lease; ids
        # are small. The Redis reader applies its own high-water mark (`_high_water`). A priority
        # queue: (priority, order of arrival, row id, stream entry) — an alarm overtakes the backlog.
        self._queue: asyncio.PriorityQueue[tuple[int, int, int, str | None]] = asyncio.PriorityQueue()
        self._seq = itertools.count()
        # How often the sweep looks for alarms not yet taken (a fever behind a stream backlog).
        self.alarm_s = min(0.25, sweep_s)
        self._high_water = max(8, workers * 8)
        self._queued: set[int] = set()
        self._in_flight: set[int] = set()
        self._tasks: list[asyncio.Task] = []
        self._overflow: list[int] = []
        self._alt: dict[tuple[str, str], int] | None = None  # (channel, id) -> staff id (`_alt_staff`)
        self._alt_at = 0.0
        inbox.on_new = self._offer
        # Test hook: runs after the handler, before the commit (to simulate a worker dying there).
        self.before_commit: Callable[[Job], Awaitable[None]] | None = None
        # Called after a commit that added outbox rows (wakes the sender).
        self.on_outbox: Callable[[], None] | None = None
        # THE order of the middlewares; the last one calls the handler.
        self.middlewares: tuple[Middleware, ...] = (self.errors, self.identity, self.sender_lock, self.db_session)

    # -- accepting (the callback path: no parsing, no handling) -------------------------------

    def priority(self, inbound: Inbound) -> int:
        """HIGH for words the parser reads as a fever, a symptom, an abnormal report or an emergency
        (~0.1–0.2 ms): such a message is handled before the safe reports waiting."""
        if inbound.kind not in READ_KINDS or not inbound.text:
            return NORMAL
        try:
            p = parse(inbound.text, fever_at=self.rt.settings.fever_at)
        except Exception:  # noqa: BLE001 - the worker parses again and meets the same bug there
            return NORMAL
        return HIGH if (p.emergency or p.fever or p.symptoms or p.checkin == "abnormal") else NORMAL

    async def accept(self, inbound: Inbound) -> int | None:
        """Stores the message durably; returns its inbox row id, or None for a duplicate.

        The state-store key answers most platform retries without touching the database; the
        inbox's unique (channel, msg_id) is the durable guard behind it. The row's priority is
        read here (`priority`).
        """
        key = f"dedup:{inbound.channel}:{inbound.msg_id}"
        state = self.rt.state
        if await state.seen(key, DEDUP_TTL_S):
            return None
        try:
            row_id = await self.inbox.add(inbound, self.priority(inbound))
        except BaseException:
            # Not stored: the retry that follows must not be taken for a duplicate.
            await state.delete(key)
            raise
        if row_id is not None and self.metrics is not None:
            self.metrics.messages_in.labels(inbound.channel, inbound.kind).inc()
        return row_id

    # -- processing --------------------------------------------------------------------------------

    async def process(self, row_id: int) -> Job:
        """Runs one inbox row through the middlewares; safe to call for a row already done."""
        job = Job(row_id)
        if row_id in self._in_flight:
            job.skipped = True
            return job
        self._in_flight.add(row_id)
        try:
            chain: Next = self._handle
            for mw in reversed(self.middlewares):
                chain = _bind(mw, chain)
            await chain(job)
        finally:
            self._in_flight.discard(row_id)
        if job.outbound_ids and self.on_outbox is not None:
            self.on_outbox()
        return job

    async def errors(self, job: Job, call_next: Next) -> None:
        """A failure is recorded on the row (attempts + 1) and retried with backoff, then parked as
        failed; the log names the row id and the exception type only, never the message's words."""
        try:
            await call_next(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any handler bug must not stop the worker
            try:
                attempts = await self._record_failure(job.row_id, exc)
            except Exception as exc2:  # noqa: BLE001 - the database itself is failing
                log.warning("inbox row %s: failed (%s) and could not be recorded (%s); retried after its lease",
                            job.row_id, type(exc).__name__, type(exc2).__name__)
                return
            if attempts >= self.max_attempts:
                log.error("inbox row %s parked as failed after %d attempts (%s)", job.row_id, attempts,
                          type(exc).__name__)
            else:
                log.warning("inbox row %s failed, attempt %d (%s); will retry", job.row_id, attempts,
                            type(exc).__name__)

    async def identity(self, job: Job, call_next: Next) -> None:
        """Loads the row and resolves the sender (resident or staff) and the group's building.

        Plain Core queries on one connection: this runs for every message of the morning wave."""
        t = InboundMessage.__table__
        # The same connection serves the handler's session later (db_session): one pool checkout
        # (with its pre-ping and reset) a message instead of two.
        async with self.rt.db.engine.connect() as conn:
            row = (await conn.execute(select(t).where(t.c.id == job.row_id))).first()
            if row is None or row.status != "pending":
                job.skipped = True
                return
            job.inbound = ib = _inbound_of(row)
            chans = IDENTITY_CHANNELS.get(ib.channel, (ib.channel,))
            who = union_all(
                select(literal("r").label("k"), Resident.id, Resident.channel).where(
                    Resident.channel.in_(chans), Resident.channel_user_id == ib.sender_id),
                select(literal("s").label("k"), Staff.id, Staff.channel).where(
                    Staff.channel.in_(chans), Staff.channel_user_id == ib.sender_id))
            found = (await conn.execute(who)).all()
            job.identity.resident_id = _prefer([(i, c) for k, i, c in found if k == "r"], ib.channel)
            job.identity.staff_id = _prefer([(i, c) for k, i, c in found if k == "s"], ib.channel)
            if job.identity.staff_id is None:  # a staff member's second channel (the bridge, say)
                job.identity.staff_id = await self._alt_staff(conn, chans, ib.sender_id)
            if ib.chat_id:
                job.identity.building_id = await conn.scalar(select(Building.id).where(Building.chat_id == ib.chat_id))
            await conn.rollback()
            job.conn = conn
            try:
                await call_next(job)
            finally:
                job.conn = None

    async def _alt_staff(self, conn: AsyncConnection, chans: tuple[str, ...], sender_id: str) -> int | None:
        """The staff member with (channel, id) among their `alt_channels`: an in-process map of
        every staff member's second channels, loaded again when a miss finds it over `ALT_TTL_S`
        old (so a roster change is seen within a minute, and a stranger costs at most one load a
        minute, not one a message)."""
        now = time.monotonic()
        if self._alt is None or now - self._alt_at > ALT_TTL_S:
            alt: dict[tuple[str, str], int] = {}
            for sid, chans_json in await conn.execute(select(Staff.id, Staff.alt_channels).order_by(Staff.id)):
                for c in chans_json or ():
                    if isinstance(c, dict) and c.get("channel") and c.get("id"):
                        alt.setdefault((str(c["channel"]), str(c["id"])), sid)
            self._alt, self._alt_at = alt, now
        for ch in chans:
            if (ch, sender_id) in self._alt:
                return self._alt[(ch, sender_id)]
        return None

    async def sender_lock(self, job: Job, call_next: Next) -> None:
        """Two quick messages from one person are handled one after the other, never racing on
        the same conversation state (aiogram's weak spot)."""
        assert job.inbound is not None
        async with self.rt.state.lock(f"sender:{job.inbound.channel}:{job.inbound.sender_id}", ttl=60, wait=60):
            await call_next(job)

    async def db_session(self, job: Job, call_next: Next) -> None:
        """One transaction for the row, the effects and the outbox; it commits on the way out."""
        t = InboundMessage.__table__
        async with AsyncSession(bind=job.conn, expire_on_commit=False) as s, s.begin():
            q = select(t.c.status).where(t.c.id == job.row_id)
            if not self.rt.db.is_sqlite:
                q = q.with_for_update(skip_locked=True)
            if await s.scalar(q) != "pending":
                job.skipped = True  # another process has it, or finished it meanwhile
                return
            job.session = s
            await call_next(job)
            await s.execute(update(t).where(t.c.id == job.row_id).values(
                status="done", attempts=t.c.attempts + 1, processed_at=self.rt.clock.now(), error=None))
            if self.before_commit is not None:
                await self.before_commit(job)

    async def _handle(self, job: Job) -> None:
        s, ib, ident = job.session, job.inbound, job.identity
        assert s is not None and ib is not None
        resident = await s.get(Resident, ident.resident_id) if ident.resident_id else None
        staff = await s.get(Staff, ident.staff_id) if ident.staff_id else None
        building = await s.get(Building, ident.building_id) if ident.building_id else None
        parsed = None
        if ib.kind in READ_KINDS and ib.text:
            parsed = parse(ib.text, fever_at=self.rt.settings.fever_at)
        ctx = Context(session=s, settings=self.rt.settings, clock=self.rt.clock, inbound=ib,
                      inbound_id=job.row_id, resident=resident, staff=staff,
                      household=resident.household if resident is not None else None,
                      building=building, parsed=parsed, state=self.rt.state)
        t0 = time.perf_counter()
        outs = await self.rt.dispatcher.feed(ctx) if self.rt.dispatcher is not None else []
        if self.metrics is not None:
            self.metrics.handler_latency.observe(time.perf_counter() - t0)
        rows = await enqueue(s, outs, self.rt.clock.now(), inbound_id=job.row_id)
        job.outbound_ids = [r.id for r in rows]

    async def _record_failure(self, row_id: int, exc: Exception) -> int:
        now = self.rt.clock.now()
        async with self.rt.db.session() as s:
            row = await s.get(InboundMessage, row_id)
            if row is None or row.status != "pending":
                return 0
            row.attempts += 1
            row.error = type(exc).__name__
            if row.attempts >= self.max_attempts:
                row.status = "failed"
            else:
                row.next_attempt_at = now + timedelta(seconds=_backoff(row.attempts))
            return row.attempts

    async def process_due(self, limit: int = 100) -> int:
        """Processes the rows whose lease or backoff has run out (the sweep; tests call it directly)."""
        n = 0
        for rid in await self.inbox.due_ids(limit):
            job = await self.process(rid)
            n += not job.skipped
        return n

    # -- background workers ----------------------------------------------------------------------

    def _offer(self, row_id: int, priority: int = NORMAL, entry: str | None = None) -> None:
        if row_id in self._queued and entry is None:
            return
        self._queue.put_nowait((priority, next(self._seq), row_id, entry))
        self._queued.add(row_id)

    def start(self) -> None:
        for n in range(self.n_workers):
            self._tasks.append(asyncio.create_task(self._worker(n), name=f"inbox-worker-{n}"))
        self._tasks.append(asyncio.create_task(self._sweeper(), name="inbox-sweeper"))
        if self.inbox.redis is not None:
            self._tasks.append(asyncio.create_task(self._stream_reader(), name="inbox-stream"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            _done, stuck = await asyncio.wait(self._tasks, timeout=10)
            for t in stuck:  # should not happen; say so instead of hanging the shutdown
                log.warning("task %s did not stop within 10 s", t.get_name())
        self._tasks.clear()

    async def _worker(self, n: int) -> None:
        while True:
            _prio, _seq, row_id, entry = await self._queue.get()
            try:
                await self.process(row_id)
                if entry is not None:
                    await self.inbox.ack(entry)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - e.g. the database is down: back off, go on
                log.warning("worker %d: row %s not processed (%s)", n, row_id, type(exc).__name__)
                await asyncio.sleep(1.0)
            finally:
                self._queued.discard(row_id)

    async def _sweeper(self) -> None:
        """Every `alarm_s`: alarms not yet taken (a fever behind a stream backlog goes first). Every
        `sweep_s`: rows whose lease or backoff ran out (a crash, a lost stream entry, a retry) —
        and while more of those are due, the queue is kept fed at the workers' own pace (recovery
        at full speed, alarms first), not a batch a second."""
        delay = self.sweep_s
        last_due = 0.0
        more = False
        while True:
            await asyncio.sleep(0 if more else min(delay, self.alarm_s))
            try:
                held = self._queued | self._in_flight
                for rid in await self.inbox.alarm_ids(self._high_water, skip=held):
                    self._offer(rid, HIGH)
                if more or time.monotonic() - last_due >= delay:
                    last_due = time.monotonic()
                    more = await self._drain_due(self.alarm_s)
                delay = self.sweep_s
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - database down: try again later, slower
                log.warning("inbox sweep failed (%s)", type(exc).__name__)
                delay = min(30.0, delay * 2)
                more = False

    async def _drain_due(self, for_s: float) -> bool:
        """Offers due rows, topping the queue up to `_high_water` whenever it falls to half (so
        several processes share a recovery instead of one taking it all), for up to `for_s`
        seconds (then the sweep looks for new alarms); True if more may be due."""
        batch = self._high_water
        end = time.monotonic() + for_s
        while True:
            while self._queue.qsize() > self._high_water // 2:
                if time.monotonic() >= end:
                    return True
                await asyncio.sleep(0.005)
            rows = await self.inbox.due_rows(batch, skip=self._queued | self._in_flight)
            for rid, prio in rows:
                self._offer(rid, prio)
            if len(rows) < batch:
                return False
            if time.monotonic() >= end:
                return True

    async def _stream_reader(self) -> None:
        consumer = self.inbox.consumer
        last_claim = 0.0
        delay = 1.0
        while True:
            try:
                entries: list = []
                if time.monotonic() - last_claim > self.inbox.lease_s / 2:
                    entries = await self.inbox.claim_stale(consumer)
                    last_claim = time.monotonic()
                if not entries:
                    # Take only what this process's workers can start soon: the rest of the stream
                    # stays for the other processes.
                    while self._queue.qsize() >= self._high_water:
                        await asyncio.sleep(0.005)
                    entries = await self.inbox.read(consumer, count=self._high_water // 2, block_ms=1000)
                for e in entries:
                    self._offer(e[1], e.priority, e[0])
                delay = 1.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis down: the DB sweep still works
                log.warning("inbox stream read failed (%s)", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(30.0, delay * 2)


def _bind(mw: Middleware, nxt: Next) -> Next:
    async def call(job: Job) -> None:
        await mw(job, nxt)

    return call


def _prefer(rows: Any, channel: str) -> int | None:
    if not rows:
        return None
    for rid, ch in rows:
        if ch == channel:
            return rid
    return rows[0][0]


def _inbound_of(row: Any) -> Inbound:
    return Inbound(channel=row.channel, msg_id=row.msg_id, sender_id=row.sender_id, text=row.text or "",
                   sent_at=row.sent_at, chat_id=row.chat_id, sender_name=row.sender_name,
                   chat_name=row.chat_name, kind=row.kind, reply_to=row.reply_to)
