"""`gridbot serve --role web|worker|scheduler|all`: each process starts only its part."""

from __future__ import annotations

import pytest

from bot.app import build_runtime, start_role


@pytest.mark.parametrize("role,workers,scheduler", [("web", False, False), ("worker", True, False),
                                                     ("scheduler", False, True), ("all", True, True)])
async def test_each_role_starts_its_part(sqlite_db, settings, clock, role, workers, scheduler):
    rt = build_runtime(settings, clock, db=sqlite_db)
    parts: dict = {}
    await start_role(rt, role, parts)
    try:
        assert bool(rt.pipeline._tasks) is workers
        assert (rt.sender._task is not None) is workers
        assert ("scheduler" in parts) is scheduler
    finally:
        if "scheduler" in parts:
            await parts["scheduler"].shutdown()
        await rt.pipeline.stop()
        await rt.sender.stop()


def test_serve_has_role_and_workers_options():
    from bot.cli import build_parser

    args = build_parser().parse_args(["serve", "--role", "web", "--workers", "2"])
    assert (args.role, args.workers) == ("web", 2)
    assert build_parser().parse_args(["serve"]).role == "all"
