"""One source of "now", so that tests and the scheduler can drive time instead of sleeping."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo


class Clock:
    def __init__(self, tz: tzinfo):
        self.tz = tz

    def now(self) -> datetime:
        return datetime.now(self.tz)


class FakeClock(Clock):
    """A clock that only moves when told to."""

    def __init__(self, start: datetime, tz: tzinfo | None = None):
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        super().__init__(tz or start.tzinfo)
        self._now = start.astimezone(self.tz)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when.astimezone(self.tz)

    def advance(self, delta: timedelta | float) -> datetime:
        if not isinstance(delta, timedelta):
            delta = timedelta(seconds=delta)
        self._now += delta
        return self._now
