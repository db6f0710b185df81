"""`gridbot bench reminders` runs end to end on a small population, and its stand-in API limits."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from scheduler import bench_reminders


def test_bench_reminders_small_run(capsys):
    assert bench_reminders.run(["--people", "300"]) == 0
    out = capsys.readouterr().out
    assert "300 reminders queued" in out and "the job fired again: 0 queued" in out
    assert "lost: 0; doubled: 0" in out or "delivery: not measured" in out


def test_stand_in_api_answers_45009_beyond_the_per_member_limit():
    pytest.importorskip("bot.channels.base", reason="SendError lives in bot/channels/base.py")
    api = bench_reminders.StandInWeCom()

    async def go() -> int:
        errors = 0
        for i in range(bench_reminders.MEMBER_MSGS_PER_MIN + 2):
            try:
                await api.send(SimpleNamespace(to_user="u1", id=i))
            except Exception as exc:  # noqa: BLE001 - SendError; its module may be absent
                assert "45009" in str(exc) and exc.retry_after > 0
                errors += 1
        return errors

    assert asyncio.run(go()) == 2
    assert api.delivered["u1"] == bench_reminders.MEMBER_MSGS_PER_MIN and api.rejected_45009 == 2
