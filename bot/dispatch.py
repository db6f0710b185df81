"""Routers and the dispatcher: which handler answers a message.

As in aiogram, each capability module in `handlers/` exports a `router`; the dispatcher includes
them in a fixed order and the first handler whose filter accepts the context handles it. A handler
takes the `Context`, changes stored facts through `ctx.session`, and *returns* the messages to send
(it never does HTTP); the pipeline writes them to the outbox in the same transaction.

A filter returns False to pass, True to accept, or a dict of values to put in `ctx.data`
(parsed command arguments, say). A handler may return `NOT_HANDLED` to let later handlers try.

Timers are events too (python-telegram-bot's idea): `@router.timer("ledger")` registers a handler
for the scheduler's `TimerEvent("ledger", at)`. A timer handler is an async generator that yields
lists of `Outbound`s; each yield is a commit point — the engine (bot/timers.py) writes the yielded
messages to the outbox with the facts changed so far and commits, then hands the handler a fresh
session in `tick.session` — so a sweep over 10,000 people commits in chunks, and a crash loses at
most the chunk in flight. Several capabilities may answer one timer; they run in router order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.config import Settings
from bot.model import Inbound, Outbound, TimerEvent

if TYPE_CHECKING:  # avoid importing the parser (and jieba) for type checks only
    from nlp import ParseResult
    from storage.models import Building, Household, Resident, Staff


class UserError(Exception):
    """An expected, user-facing failure: its message is sent back to the sender as it is."""


class NotFound(UserError):
    """The code or household named does not exist (the web answers 404)."""


class OutOfScope(UserError):
    """It exists, but is not the staff member's to see or act on (the web answers 403)."""


@dataclass(frozen=True)
class Also:
    """A handler's messages, after which later handlers may still take the same message: a check-in
    that also asks for groceries is recorded by handlers.checkin, then taken by handlers.requests."""

    messages: Sequence[Outbound] = ()


class _NotHandled:
    def __repr__(self) -> str:
        return "NOT_HANDLED"


NOT_HANDLED: Any = _NotHandled()


@dataclass
class Context:
    """Everything a handler may use for one message (or timer event)."""

    session: AsyncSession
    settings: Settings
    clock: Clock
    inbound: Inbound
    inbound_id: int | None = None
    resident: Resident | None = None
    staff: Staff | None = None
    household: Household | None = None
    building: Building | None = None  # the building whose group the message came from
    parsed: ParseResult | None = None
    # A sender's claim to a household that nobody has confirmed yet (storage.models.PendingBinding):
    # their reports count for `household` as unverified.
    claim: Any = None
    data: dict[str, Any] = field(default_factory=dict)
    # The runtime's state store (bot/state.py: `get`/`set` with a TTL, `delete`): conversation state.
    state: Any = None
    # Runs a (changed) context through the routers again: registration hands a message sent before
    # the sender was bound to the resident handlers this way. Set by the dispatcher.
    dispatch: Callable[[Context], Awaitable[list[Outbound]]] | None = None

    @property
    def now(self) -> datetime:
        return self.clock.now()

    @property
    def text(self) -> str:
        return self.inbound.text

    def reply(self, text: str, **kw: Any) -> Outbound:
        """A private reply to the sender on the channel they wrote on."""
        return Outbound(channel=self.inbound.channel, to_user=self.inbound.sender_id, text=text,
                        reply_to=self.inbound.reply_to, **kw)

    def reply_in_chat(self, text: str, **kw: Any) -> Outbound:
        """A reply where the message came from: the group, or the private chat."""
        if self.inbound.chat_id:
            return Outbound(channel=self.inbound.channel, to_chat=self.inbound.chat_id, text=text,
                            reply_to=self.inbound.reply_to, **kw)
        return self.reply(text, **kw)


@dataclass
class Tick:
    """What a timer handler may use: the event, the settings, and the current chunk's session."""

    event: TimerEvent
    settings: Settings
    clock: Clock
    session: AsyncSession | None = None
    # What the handler wants said of the run ("no slot due: ..."); the engine logs and returns it.
    notes: list[str] = field(default_factory=list)

    @property
    def now(self) -> datetime:
        return self.event.at

    @property
    def s(self) -> AsyncSession:
        assert self.session is not None, "a timer handler's session exists between its yields"
        return self.session


Result = Sequence[Outbound] | Also | None
Handler = Callable[[Context], Awaitable[Result]]
Filter = Callable[[Context], "bool | dict[str, Any]"]
TimerHandler = Callable[[Tick], AsyncIterator[Sequence[Outbound]]]


@dataclass
class _Route:
    handler: Handler
    filters: tuple[Filter, ...]


class Router:
    def __init__(self, name: str):
        self.name = name
        self.routes: list[_Route] = []
        self.timers: dict[str, TimerHandler] = {}

    def message(self, *filters: Filter) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(_Route(handler, filters))
            return handler

        return register

    def timer(self, name: str) -> Callable[[TimerHandler], TimerHandler]:
        def register(handler: TimerHandler) -> TimerHandler:
            self.timers[name] = handler
            return handler

        return register


class Dispatcher:
    def __init__(self, routers: Sequence[Router] = ()):
        self.routers: list[Router] = []
        for r in routers:
            self.include(r)

    def include(self, router: Router) -> None:
        self.routers.append(router)

    def timer_handlers(self, name: str) -> list[TimerHandler]:
        return [r.timers[name] for r in self.routers if name in r.timers]

    @property
    def timer_names(self) -> list[str]:
        return list(dict.fromkeys(n for r in self.routers for n in r.timers))

    async def feed(self, ctx: Context) -> list[Outbound]:
        """Runs the first handler that accepts the context (and those after an `Also`); a UserError
        becomes a reply."""
        ctx.dispatch = self.feed
        done: list[Outbound] = []
        for router in self.routers:
            for route in router.routes:
                data: dict[str, Any] = {}
                accepted = True
                for f in route.filters:
                    got = f(ctx)
                    if not got:
                        accepted = False
                        break
                    if isinstance(got, dict):
                        data.update(got)
                if not accepted:
                    continue
                ctx.data = data
                try:
                    out = await route.handler(ctx)
                except UserError as exc:
                    return [*done, ctx.reply(str(exc))]
                if out is NOT_HANDLED:
                    continue
                if isinstance(out, Also):
                    done += out.messages
                    continue
                return [*done, *(out or [])]
        return done
