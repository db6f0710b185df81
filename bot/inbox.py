"""The durable inbox: a message is a database row before its callback is answered.

On the embedded default the row is the whole story: workers in this process take new ids from an
in-process queue and sweep the table for rows whose lease ran out. With Redis configured the new
row's id is ALSO added to a stream read by a consumer group, so that several worker processes share
the load; the row stays the truth (a lost stream entry only delays a message until the sweep), and
the pending entries of a consumer that died are taken over with XAUTOCLAIM.

Callbacks arrive in bursts (the 08:00 wave); inserts that arrive within `window_s` (~2 ms) are
written in ONE transaction (group commit), which is what lets one process answer thousands of
callbacks a second on PostgreSQL while every answer still means "it is on disk".
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from bot.clock import Clock
from bot.model import Inbound
from storage.db import Database
from storage.models import InboundMessage

log = logging.getLogger(__name__)

GROUP = "workers"
# The longest text stored (a callback body is at most 64 KB; a resident never writes this much).
MAX_TEXT = 8000
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")
_OLDEST, _NEWEST = datetime(2000, 1, 1, tzinfo=timezone.utc), datetime(2100, 1, 1, tzinfo=timezone.utc)


HIGH, NORMAL = 0, 1  # InboundMessage.priority: an alarm (fever, symptom, emergency), the rest


class Entry(tuple):
    """A stream entry as (entry id, row id), with the row's `priority` (stored on the entry)."""

    priority: int

    def __new__(cls, entry_id: str, row_id: int, priority: int = NORMAL) -> Entry:
        self = super().__new__(cls, (entry_id, row_id))
        self.priority = priority
        return self


class Unstorable(Exception):
    """A message the database refuses even as a `failed` row: its callback is answered 400."""


def _column_sizes() -> dict[str, int]:
    return {c.name: c.type.length for c in InboundMessage.__table__.columns
            if getattr(c.type, "length", None)}


_SIZES = _column_sizes()


def clean_text(value: str | None, limit: int | None) -> str | None:
    """NUL and lone surrogates (which PostgreSQL or the UTF-8 encoder refuse) replaced by U+FFFD,
    cut to `limit` characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value)
    value = _BAD_CHARS.sub("\ufffd", value)
    return value[:limit] if limit else value


def clean(inbound: Inbound, now: datetime | None = None) -> Inbound:
    """THE cleaning of an inbound message before storage, whatever its channel: every text field
    made storable and cut to its column's size, an absurd or naive `sent_at` replaced.

    Applied by `Inbox.add`, the one door of every channel into the database."""
    fields: dict[str, Any] = {}
    for f in ("channel", "msg_id", "sender_id", "kind"):  # required
        fields[f] = clean_text(getattr(inbound, f) or "", _SIZES.get(f))
    for f in ("chat_id", "sender_name", "chat_name", "reply_to"):  # optional: "" is None
        fields[f] = clean_text(getattr(inbound, f), _SIZES.get(f)) or None
    fields["text"] = clean_text(inbound.text or "", MAX_TEXT)
    sent = inbound.sent_at
    if not isinstance(sent, datetime) or sent.tzinfo is None or not _OLDEST <= sent <= _NEWEST:
        sent = now or datetime.now(timezone.utc)
    fields["sent_at"] = sent
    if all(fields[k] == getattr(inbound, k) for k in fields):
        return inbound
    return dataclasses.replace(inbound, **fields)


class Inbox:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        redis: Any = None,
        prefix: str = "gridbot:",
        lease_s: float = 30.0,
        window_s: float = 0.002,
        max_batch: int = 500,
        max_flushes: int = 3,
    ):
        self.db = db
        self.clock = clock
        self.redis = redis
        self.stream = prefix + "inbox"
        self.lease = timedelta(seconds=lease_s)
        self.lease_s = lease_s
        self.window_s = window_s
        self.max_batch = max_batch
        self.add_timeout_s = 4.5
        # Group commit proper: while `max_flushes` transactions are in flight, new arrivals wait and
        # then go together in the next one, so batches grow with the load (SQLite has one writer).
        self.max_flushes = 1 if db.is_sqlite else int(os.environ.get("GRIDBOT_INBOX_FLUSHES", max_flushes))
        self._in_flight = 0
        self._pending: list[tuple[dict[str, Any], asyncio.Future[int | None]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task] = set()
        self._group_ready = False
        self._redis_down_until = 0.0  # monotonic time before which the stream is not tried
        self.redis_timeout_s = 1.0
        # Called with each new row id after its commit (the in-process worker queue).
        self.on_new: Callable[[int, int], None] | None = None
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"

    # -- writing ---------------------------------------------------------------------------------

    async def add(self, inbound: Inbound, priority: int = NORMAL) -> int | None:
        """Stores the message; returns its row id, or None if (channel, msg_id) is already stored.

        `priority` HIGH (an alarm the parser read at intake) puts it ahead of the backlog.

        Raises whatever the database raises: the callback must then answer 5xx so that the
        platform retries, rather than acknowledge a message that is not stored.
        """
        now = self.clock.now()
        ib = clean(inbound, now)
        row = {
            "channel": ib.channel, "msg_id": ib.msg_id, "chat_id": ib.chat_id, "chat_name": ib.chat_name,
            "sender_id": ib.sender_id, "sender_name": ib.sender_name, "kind": ib.kind, "text": ib.text,
            "reply_to": ib.reply_to, "sent_at": ib.sent_at, "received_at": now, "status": "pending",
            "attempts": 0, "next_attempt_at": now + self.lease, "priority": priority,
        }
        fut: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._pending.append((row, fut))
        if self.window_s <= 0:
            self._start_flush()
        elif not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_later(self.window_s, self._start_flush)
        try:
            # WeCom gives up after 5 s and retries: better a clear 503 before that than a hung answer.
            async with asyncio.timeout(self.add_timeout_s):  # no extra task, unlike wait_for
                return await fut
        except TimeoutError:
            log.warning("inbox insert for %s:%s took over %.1f s; answering 503", inbound.channel,
                        inbound.msg_id, self.add_timeout_s)
            raise

    def _start_flush(self) -> None:
        self._scheduled = False
        while self._pending and self._in_flight < self.max_flushes:
            self._in_flight += 1
            task = asyncio.ensure_future(self._flush_loop())
            self._tasks.add(task)
            task.add_done_callback(self._flushed)

    def _flushed(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        self._in_flight -= 1
        if self._pending and not self._scheduled:
            self._start_flush()

    async def _flush_loop(self) -> None:
        """Writes batches while there are any, on one connection: under load the connection stays
        (a pool checkout with its pre-ping costs as much as the INSERT); idle, it goes back."""
        try:
            async with self.db.engine.connect() as conn:
                while self._pending:
                    batch = self._pending[: self.max_batch]
                    del self._pending[: self.max_batch]
                    if not await self._flush(conn, batch):
                        return  # the connection may be broken: the next batch gets a fresh one
        except Exception as exc:  # noqa: BLE001 - could not even connect: fail what is waiting
            batch, self._pending = self._pending, []
            _fail(batch, exc)

    async def _flush(self, conn: Any, batch: list[tuple[dict[str, Any], asyncio.Future[int | None]]]) -> bool:
        # A platform retry may land in the same batch as the original: only the first one inserts.
        by_key: dict[tuple[str, str], list[asyncio.Future[int | None]]] = {}
        rows: list[dict[str, Any]] = []
        for row, fut in batch:
            key = (row["channel"], row["msg_id"])
            if key not in by_key:
                by_key[key] = []
                rows.append(row)
            by_key[key].append(fut)
        failed: set[tuple[str, str]] = set()  # stored as failed rows: not for the workers
        try:
            inserted = await self._insert(conn, rows)
        except Exception as exc:  # noqa: BLE001 - classified below
            if _connection_lost(conn, exc):
                _fail(batch, exc)  # every waiter hears of it and answers 503
                return False
            # One bad row must not fail its neighbours: the batch is split until the bad row is alone.
            try:
                inserted = await self._insert_apart(conn, rows, exc, failed)
            except Exception as exc2:  # noqa: BLE001 - the connection went away meanwhile
                _fail(batch, exc2)
                return False
        new_ids: list[tuple[int, int]] = []
        prio = {(r["channel"], r["msg_id"]): r.get("priority", NORMAL) for r in rows}
        for key, futs in by_key.items():
            rid = inserted.get(key)
            for i, f in enumerate(futs):
                if f.done():
                    continue
                if isinstance(rid, Exception):
                    f.set_exception(rid)
                else:
                    f.set_result(rid if i == 0 else None)
            if isinstance(rid, int) and key not in failed:
                new_ids.append((rid, prio[key]))
        if new_ids:
            await self._announce(new_ids)
        return True

    async def _insert(self, conn: Any, rows: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
        async with conn.begin():
            result = await conn.execute(self._stmt, rows)
            return {(r.channel, r.msg_id): r.id for r in result}

    async def _insert_apart(self, conn: Any, rows: list[dict[str, Any]], exc: Exception,
                            failed: set[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        """Inserts `rows` whose group insert failed with `exc`: halves are tried on their own, and a
        row that fails alone is stored as a `failed` row with its error. Raises on a lost connection."""
        if len(rows) == 1:
            return await self._store_failed(conn, rows[0], exc, failed)
        out: dict[tuple[str, str], Any] = {}
        mid = len(rows) // 2
        for part in (rows[:mid], rows[mid:]):
            try:
                out.update(await self._insert(conn, part))
            except Exception as e:  # noqa: BLE001
                if _connection_lost(conn, e):
                    raise
                out.update(await self._insert_apart(conn, part, e, failed))
        return out

    async def _store_failed(self, conn: Any, row: dict[str, Any], exc: Exception,
                            failed: set[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        """The row the database refused, kept as `failed` (its text dropped, its ids made plain ASCII)
        so that the platform's retries are answered as duplicates instead of failing for ever."""
        key = (row["channel"], row["msg_id"])
        error = _error_text(exc)
        safe = {k: (_ascii(v, _SIZES.get(k)) if isinstance(v, str) else v) for k, v in row.items()}
        safe.update(text="", status="failed", error=error, next_attempt_at=None,
                    channel=_ascii(row["channel"], _SIZES["channel"]) or "?")
        safe["msg_id"] = _ascii(row["msg_id"], _SIZES["msg_id"])
        try:
            got = await self._insert(conn, [safe])
        except Exception as e:  # noqa: BLE001
            if _connection_lost(conn, e):
                raise
            log.error("inbox: a %s message could not be stored even as failed (%s; then %s); answering 400",
                      row["channel"], error, _error_text(e))
            return {key: Unstorable(error)}
        rid = got.get((safe["channel"], safe["msg_id"]))
        log.warning("inbox: a %s message was refused by the database (%s); stored as failed row %s",
                    row["channel"], error, rid)
        failed.add(key)
        return {key: rid}

    @functools.cached_property
    def _stmt(self) -> Any:
        if self.db.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        t = InboundMessage.__table__
        # One cached statement run as executemany: SQLAlchemy's "insertmanyvalues" sends it as
        # multi-row INSERTs with RETURNING, without compiling a new statement for every batch size.
        return (insert(t).on_conflict_do_nothing(index_elements=["channel", "msg_id"])
                .returning(t.c.id, t.c.channel, t.c.msg_id))

    async def close(self) -> None:
        await self.drain()

    async def _announce(self, ids: list[tuple[int, int]]) -> None:
        """Hands new row ids to the workers: through the stream (every process shares it) or, on the
        embedded default or while Redis is unreachable, to this process's own workers at once (the
        stream is an accelerator, never a gate)."""
        if self.redis is not None and time.monotonic() >= self._redis_down_until:
            try:
                async with asyncio.timeout(self.redis_timeout_s):
                    await self._xadd(ids)
                return
            except Exception as exc:  # noqa: BLE001 - the rows are durable; hand them over here
                # Not every batch waits out a timeout while Redis is away: skip it for a second.
                self._redis_down_until = time.monotonic() + 1.0
                self._group_ready = False  # it may come back without its stream (a restart)
                log.warning("inbox stream add failed (%s); this process's workers take the new rows",
                            type(exc).__name__)
        if self.on_new is not None:
            for rid, prio in ids:
                self.on_new(rid, prio)

    async def _xadd(self, ids: list[tuple[int, int]]) -> None:
        async with self.redis.pipeline(transaction=False) as p:
            for rid, prio in ids:
                p.xadd(self.stream, {"id": str(rid), "p": str(prio)}, maxlen=1_000_000, approximate=True)
            await p.execute()

    async def drain(self) -> None:
        """Waits for inserts in flight (shutdown, tests)."""
        if self._pending:
            self._start_flush()
        while self._tasks or self._pending:
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            else:
                self._start_flush()

    # -- reading ---------------------------------------------------------------------------------

    async def due_ids(self, limit: int = 100) -> list[int]:
        """Pending rows whose lease or backoff has run out, alarms first, then oldest first."""
        return [rid for rid, _p in await self.due_rows(limit)]

    async def due_rows(self, limit: int = 100, skip: Collection[int] = ()) -> list[tuple[int, int]]:
        """(id, priority) of the pending rows whose lease or backoff has run out, alarms first, then
        oldest first; `skip`: ids this process holds already (queued or in flight)."""
        t = InboundMessage.__table__
        q = (select(t.c.id, t.c.priority)
             .where(t.c.status == "pending", t.c.next_attempt_at <= self.clock.now())
             .order_by(t.c.priority, t.c.id).limit(limit))
        if skip:
            q = q.where(t.c.id.not_in(list(skip)))
        async with self.db.engine.connect() as conn:
            return [(r.id, r.priority) for r in await conn.execute(q)]

    async def alarm_ids(self, limit: int = 100, skip: Collection[int] = ()) -> list[int]:
        """Pending alarms (HIGH) not waiting out a retry's backoff, whatever their lease: a fever
        behind a backlog in the stream is taken from here at once (a row another process is
        running is skipped by its row lock)."""
        t = InboundMessage.__table__
        q = (select(t.c.id).where(t.c.status == "pending", t.c.priority == HIGH,
                                  (t.c.attempts == 0) | (t.c.next_attempt_at <= self.clock.now()))
             .order_by(t.c.id).limit(limit))
        if skip:
            q = q.where(t.c.id.not_in(list(skip)))
        async with self.db.engine.connect() as conn:
            return list((await conn.scalars(q)).all())

    async def ensure_group(self) -> None:
        """Creates the consumer group (and the stream) unless known to exist. When it had to be
        created, Redis may have lost the stream (a restart without persistence): the pending rows
        not yet due for the sweep are added again, so that none waits out its lease."""
        if self.redis is None or self._group_ready:
            return
        from redis.exceptions import ResponseError

        try:
            await self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            self._group_ready = True
            return
        self._group_ready = True
        try:
            n = await self._reannounce()
        except Exception as exc:  # noqa: BLE001 - the sweep still finds them after their lease
            log.warning("inbox stream group created; pending rows not added again (%s)", type(exc).__name__)
            return
        if n:
            log.info("inbox stream group created; %d pending rows added to the stream again", n)

    async def _reannounce(self, limit: int = 100_000) -> int:
        """Adds again the pending rows older than the stream's first entry (those a lost stream
        held), except those the sweep takes anyway (due) or that wait out a retry's backoff."""
        first = _entries(await self.redis.xrange(self.stream, "-", "+", count=1))
        now = self.clock.now()
        t = InboundMessage.__table__
        q = select(t.c.id, t.c.priority).where(t.c.status == "pending", t.c.attempts == 0, t.c.next_attempt_at > now)
        if first:
            q = q.where(t.c.id < first[0][1])
        async with self.db.engine.connect() as conn:
            ids = [(r.id, r.priority) for r in await conn.execute(q.order_by(t.c.priority, t.c.id).limit(limit))]
        for i in range(0, len(ids), 1000):
            await self._xadd(ids[i:i + 1000])
        return len(ids)

    async def _stream_call(self, fn: Callable[[], Awaitable[Any]], what: str, idle_s: float) -> Any:
        """Runs a stream command with the group in place: on NOGROUP (Redis lost the group) it is
        created again and the command retried; with Redis unreachable, waits `idle_s` and returns
        None (the caller polls again, at its normal pace, and picks up at once when Redis is back)."""
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import ResponseError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        try:
            for attempt in (1, 2):
                await self.ensure_group()
                try:
                    return await fn()
                except ResponseError as exc:
                    if "NOGROUP" not in str(exc) or attempt == 2:
                        raise
                    log.warning("inbox stream %s: the consumer group is gone (Redis restarted?); "
                                "creating it again", what)
                    self._group_ready = False
        except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError) as exc:
            self._group_ready = False
            log.warning("inbox stream %s failed (%s); rows reach the workers without it", what,
                        type(exc).__name__)
            await asyncio.sleep(idle_s)
        return None

    async def read(self, consumer: str, count: int = 32, block_ms: int = 1000) -> list[Entry]:
        """New stream entries for this consumer: (entry id, row id)."""
        got = await self._stream_call(
            lambda: self.redis.xreadgroup(GROUP, consumer, {self.stream: ">"}, count=count, block=block_ms),
            "read", block_ms / 1000)
        return _entries(got[0][1] if got else [])

    async def claim_stale(self, consumer: str, count: int = 100) -> list[Entry]:
        """Entries another consumer took and never acknowledged within the lease (it died)."""
        res = await self._stream_call(
            lambda: self.redis.xautoclaim(self.stream, GROUP, consumer, min_idle_time=int(self.lease_s * 1000),
                                          start_id="0-0", count=count),
            "claim", 0.0)
        return _entries(res[1] if res else [])

    async def ack(self, entry_id: str) -> None:
        """Acknowledges a processed entry. With Redis away this is skipped (the row is done in the
        database; the entry, if Redis still has it, is claimed later and found done)."""
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        if time.monotonic() < self._redis_down_until:
            return
        try:
            async with asyncio.timeout(self.redis_timeout_s):
                async with self.redis.pipeline(transaction=False) as p:
                    p.xack(self.stream, GROUP, entry_id)
                    p.xdel(self.stream, entry_id)
                    await p.execute()
        except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError) as exc:
            self._redis_down_until = time.monotonic() + 1.0
            log.warning("inbox stream ack failed (%s)", type(exc).__name__)


def _connection_lost(conn: Any, exc: BaseException) -> bool:
    """Is this the database or the connection failing (every row would), not one row's data?"""
    if getattr(conn, "invalidated", False) or getattr(conn, "closed", False):
        return True
    if isinstance(exc, OSError | TimeoutError | asyncio.CancelledError):
        return True
    return isinstance(exc, DBAPIError) and (exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError))


def _error_text(exc: BaseException) -> str:
    """A short reason for the `error` column and the log: the driver's message up to any quoted
    value (asyncpg quotes the offending parameter, which may be a resident's words)."""
    orig = getattr(exc, "orig", None) or exc
    msg = str(orig).splitlines()[0] if str(orig) else ""
    msg = msg.split("'", 1)[0].strip()
    return f"{type(orig).__name__}: {msg}"[:200]


def _ascii(value: str | None, limit: int | None) -> str | None:
    if value is None:
        return None
    out = value.encode("ascii", "backslashreplace").decode("ascii").replace("\x00", "\\x00")
    return out[:limit] if limit else out


def _fail(batch: list[tuple[dict[str, Any], asyncio.Future[int | None]]], exc: Exception) -> None:
    for _row, f in batch:
        if not f.done():
            f.set_exception(exc)


def _entries(raw: list) -> list[Entry]:
    out = []
    for entry_id, fields in raw:
        if not fields:
            continue  # deleted while pending
        eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        rid = fields.get(b"id", fields.get("id"))
        prio = fields.get(b"p", fields.get("p"))
        out.append(Entry(eid, int(rid), int(prio) if prio is not None else NORMAL))
    return out
