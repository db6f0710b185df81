"""`gridbot ledger`: the day's ledger (台账) on the terminal, as JSON, or as an Excel file."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import date, datetime

from bot.config import Settings, load_settings
from storage.ledger import UnknownGrid, compute_ledger, format_table, write_ledger_xlsx


def cli_ledger(args) -> int:
    settings = load_settings()
    if args.date:
        try:
            day = date.fromisoformat(args.date)
        except ValueError:
            print(f"日期格式应为 YYYY-MM-DD: {args.date!r}", file=sys.stderr)
            return 2
    else:
        day = datetime.now(settings.tz).date()
    return asyncio.run(_cli_ledger(args, settings, day))


async def _cli_ledger(args, settings: Settings, day: date) -> int:
    from storage.db import Database
    from storage.roster import SchemaMissing, ensure_schema

    db = Database(settings.database_url)
    try:
        await ensure_schema(db)
        async with db.session() as s:
            ledger = await compute_ledger(s, day, settings.tz, [args.grid] if args.grid else None)
    except (SchemaMissing, UnknownGrid) as exc:
        print(str(exc).strip("'\""), file=sys.stderr)
        return 2
    finally:
        await db.dispose()
    if args.xlsx:
        write_ledger_xlsx(ledger, args.xlsx)
    if args.json:
        print(json.dumps(ledger, ensure_ascii=False, indent=2))
    else:
        print(format_table(ledger))
        if args.xlsx:
            print(f"已导出 {args.xlsx}")
    return 0
