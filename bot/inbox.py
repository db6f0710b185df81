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
import functools
import logging
import os
import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bot.clock import Clock
from bot.model import Inbound
from storage.db import Database
from storage.models import InboundMessage

log = logging.getLogger(__name__)

GROUP = "workers"


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
        # Called with each new row id after its commit (the in-process worker queue).
        self.on_new: Callable[[int], None] | None = None
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"

    # -- writing ---------------------------------------------------------------------------------

    async def add(self, inbound: Inbound) -> int | None:
        """Stores the message; returns its row id, or None if (channel, msg_id) is already stored.

        Raises whatever the database raises: the callback must then answer 5xx so that the
        platform retries, rather than acknowledge a message that is not stored.
        """
        now = self.clock.now()
        row = {
            "channel": inbound.channel, "msg_id": inbound.msg_id[:128], "chat_id": inbound.chat_id,
            "chat_name": (inbound.chat_name or None) and inbound.chat_name[:200],
            "sender_id": inbound.sender_id[:128],
            "sender_name": (inbound.sender_name or None) and inbound.sender_name[:100],
            "kind": inbound.kind[:32], "text": inbound.text, "reply_to": inbound.reply_to,
            "sent_at": inbound.sent_at, "received_at": now, "status": "pending", "attempts": 0,
            "next_attempt_at": now + self.lease,
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
        try:
            async with conn.begin():
                result = await conn.execute(self._stmt, rows)
                inserted = {(r.channel, r.msg_id): r.id for r in result}
        except Exception as exc:  # noqa: BLE001 - every waiter hears of it and answers 503
            _fail(batch, exc)
            return False
        new_ids: list[int] = []
        for key, futs in by_key.items():
            rid = inserted.get(key)
            for i, f in enumerate(futs):
                if not f.done():
                    f.set_result(rid if i == 0 else None)
            if rid is not None:
                new_ids.append(rid)
        if new_ids:
            await self._announce(new_ids)
        return True

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

    async def _announce(self, ids: list[int]) -> None:
        if self.redis is not None:
            try:
                async with self.redis.pipeline(transaction=False) as p:
                    for rid in ids:
                        p.xadd(self.stream, {"id": str(rid)}, maxlen=1_000_000, approximate=True)
                    await p.execute()
            except Exception as exc:  # noqa: BLE001 - the row is durable; the sweep will find it
                log.warning("inbox stream add failed (%s); rows wait for the sweep", type(exc).__name__)
        elif self.on_new is not None:
            for rid in ids:
                self.on_new(rid)

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
        """Pending rows whose lease or backoff has run out, oldest first."""
        now = self.clock.now()
        async with self.db.session() as s:
            q = (select(InboundMessage.id)
                 .where(InboundMessage.status == "pending", InboundMessage.next_attempt_at <= now)
                 .order_by(InboundMessage.id).limit(limit))
            return list((await s.scalars(q)).all())

    async def ensure_group(self) -> None:
        if self.redis is None or self._group_ready:
            return
        from redis.exceptions import ResponseError

        try:
            await self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def read(self, consumer: str, count: int = 32, block_ms: int = 1000) -> list[tuple[str, int]]:
        """New stream entries for this consumer: (entry id, row id)."""
        await self.ensure_group()
        got = await self.redis.xreadgroup(GROUP, consumer, {self.stream: ">"}, count=count, block=block_ms)
        return _entries(got[0][1] if got else [])

    async def claim_stale(self, consumer: str, count: int = 100) -> list[tuple[str, int]]:
        """Entries another consumer took and never acknowledged within the lease (it died)."""
        await self.ensure_group()
        res = await self.redis.xautoclaim(self.stream, GROUP, consumer, min_idle_time=int(self.lease_s * 1000),
                                          start_id="0-0", count=count)
        return _entries(res[1])

    async def ack(self, entry_id: str) -> None:
        await self.redis.xack(self.stream, GROUP, entry_id)
        await self.redis.xdel(self.stream, entry_id)


def _fail(batch: list[tuple[dict[str, Any], asyncio.Future[int | None]]], exc: Exception) -> None:
    for _row, f in batch:
        if not f.done():
            f.set_exception(exc)


def _entries(raw: list) -> list[tuple[str, int]]:
    out = []
    for entry_id, fields in raw:
        if not fields:
            continue  # deleted while pending
        eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        rid = fields.get(b"id", fields.get("id"))
        out.append((eid, int(rid)))
    return out
