"""`gridbot jobs list [--json]` and `gridbot jobs run NAME`."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from scheduler.names import JOB_NAMES, JOBS


def cli_jobs(args: Any) -> int:
    from bot.clock import Clock
    from bot.config import load_settings

    settings = load_settings()
    if args.jobs_command == "list":
        from scheduler.service import next_runs

        runs = [(name, when.isoformat() if when else None)
                for name, when in next_runs(settings, Clock(settings.tz).now())]
        if getattr(args, "json", False):
            print(json.dumps([{"name": n, "next_run": w} for n, w in runs], ensure_ascii=False))
        else:
            width = max(len(n) for n, _ in runs)
            for name, when in runs:
                print(f"{name:<{width}}  {when or '-'}")
        return 0
    if args.jobs_command == "run":
        if not args.name:
            width = max(map(len, JOB_NAMES))
            print("gridbot jobs run NAME, where NAME is one of:")
            for name in JOB_NAMES:
                print(f"  {name:<{width}}  {JOBS[name]}")
            return 0
        if args.name not in JOB_NAMES:
            print(f"unknown job {args.name!r}; jobs: {', '.join(JOB_NAMES)}", file=sys.stderr)
            return 2
        options: dict[str, Any] = {}
        slot, day = getattr(args, "slot", None), getattr(args, "date", None)
        if slot or day:
            if args.name != "quarantine-reminders":
                print("--slot and --date are for quarantine-reminders only", file=sys.stderr)
                return 2
            if not slot:
                print("--date needs --slot (am or pm)", file=sys.stderr)
                return 2
            options["slot"] = slot
            if day:
                from datetime import date

                try:
                    options["date"] = date.fromisoformat(day)
                except ValueError:
                    print(f"--date {day!r}: use YYYY-MM-DD", file=sys.stderr)
                    return 2
        from storage.roster import SchemaMissing

        try:
            fired = asyncio.run(_run(settings, args.name, options))
        except SchemaMissing as exc:
            print(str(exc), file=sys.stderr)
            return 2
        n = fired.messages
        # Delivery is the outbox sender's: a running `gridbot serve` picks these up within seconds.
        print(f"{args.name}: {n} message{'s' if n != 1 else ''} queued")
        for note in fired.notes:
            print(f"  {note}")
        return 0
    print(f"unknown jobs command {args.jobs_command!r}; use list or run", file=sys.stderr)
    return 2


async def _run(settings: Any, name: str, options: dict[str, Any] | None = None) -> Any:
    from bot.clock import Clock
    from bot.runtime import Runtime
    from scheduler.jobs import run_job_detail
    from storage.db import Database
    from storage.roster import ensure_schema

    db = Database(settings.database_url)
    try:
        await ensure_schema(db)
        return await run_job_detail(name, Runtime(settings=settings, db=db, clock=Clock(settings.tz)),
                                    options=options)
    finally:
        await db.dispose()
