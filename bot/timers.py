"""Timer events through the same path as chat messages: errors → session → handler → outbox.

The scheduler fires `TimerEvent(name, at)`; every handler registered for the name with
`@router.timer(name)` runs, in router order. Each of its yields commits the chunk it wrote together
with the outbox rows it yielded (see bot/dispatch.py), so the outbox is written here and in the
message pipeline only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from bot.dispatch import Dispatcher, Tick
from bot.model import TimerEvent
from bot.outbox import enqueue

log = logging.getLogger("gridbot.timers")

_default: Dispatcher | None = None


def dispatcher_of(rt: Any) -> Dispatcher:
    """The runtime's dispatcher; a bare runtime (the CLI's `jobs run`) gets the standard one."""
    global _default
    if rt.dispatcher is not None:
        return rt.dispatcher
    if _default is None:
        from handlers import build_dispatcher

        _default = build_dispatcher()
    return _default


@dataclass
class Fired:
    """What one timer event did: messages queued, and what its handlers said of the run."""

    messages: int = 0
    notes: list[str] = field(default_factory=list)


async def fire_event(rt: Any, event: TimerEvent) -> Fired:
    handlers = dispatcher_of(rt).timer_handlers(event.job)
    if not handlers:
        raise KeyError(f"unknown job {event.job!r}; jobs: {', '.join(dispatcher_of(rt).timer_names)}")
    tick = Tick(event=event, settings=rt.settings, clock=rt.clock)
    done = Fired()
    for handler in handlers:
        steps = handler(tick)
        try:
            while True:
                async with rt.db.session() as s:
                    tick.session = s
                    try:
                        outs = await anext(steps)
                    except StopAsyncIteration:
                        break
                    done.messages += len(await enqueue(s, outs, event.at))
        except Exception as exc:
            # The chunk in flight is rolled back; the sweeps are idempotent, the next run redoes it.
            # Only the type is logged: a traceback's locals could hold names and readings.
            log.error("timer %s: %s failed (%s)", event.job, getattr(handler, "__qualname__", handler),
                      type(exc).__name__)
            raise
        finally:
            tick.session = None
            await steps.aclose()
    done.notes = tick.notes
    pipeline = getattr(rt, "pipeline", None)
    if done.messages and pipeline is not None and pipeline.on_outbox is not None:
        pipeline.on_outbox()
    return done
