"""`gridbot ledger`: the day's ledger (台账) on the terminal, as JSON, or as the Excel workbook.

The workbook is built by storage/ledger.py (`ledger_book`, `write_ledger_xlsx`), the same builder as
the web page's 导出Excel; `book_rules` gives it the configuration and the handlers' words.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import date, datetime

from bot.config import Settings, load_settings
from storage.ledger import (
    BookRules,
    UnknownGrid,
    compute_ledger,
    format_table,
    ledger_book,
    write_ledger_xlsx,
)


def book_rules(settings: Settings) -> BookRules:
    from handlers import texts

    return BookRules(tz=settings.tz, slots=settings.reminder_slots, missed_after=settings.missed_delta,
                     symptom_names=texts.SYMPTOMS_ZH, kind_names=texts.KIND_ZH, request_names=texts.REQUEST_ZH, slot_names=texts.SLOT_ZH)


def _day(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        print(f"日期格式应为 YYYY-MM-DD: {raw!r}", file=sys.stderr)
        return None


def cli_ledger(args) -> int:
    settings = load_settings()
    day = _day(args.date) if args.date else datetime.now(settings.tz).date()
    first = _day(args.first) if getattr(args, "first", None) else day
    if day is None or first is None:
        return 2
    return asyncio.run(_cli_ledger(args, settings, first, day))


async def _cli_ledger(args, settings: Settings, first: date, day: date) -> int:
    from storage.db import Database
    from storage.roster import SchemaMissing, ensure_schema

    db = Database(settings.database_url)
    grids = [args.grid] if args.grid else None
    try:
        await ensure_schema(db)
        async with db.session() as s:
            ledger = await compute_ledger(s, day, settings.tz, grids)
            book = (await ledger_book(s, first, day, datetime.now(settings.tz), book_rules(settings),
                                      grid_names=grids) if args.xlsx else None)
    except (SchemaMissing, UnknownGrid) as exc:
        print(str(exc).strip("'\""), file=sys.stderr)
        return 2
    finally:
        await db.dispose()
    if book is not None:
        write_ledger_xlsx(book, args.xlsx)
    if args.json:
        print(json.dumps(ledger, ensure_ascii=False, indent=2))
    else:
        print(format_table(ledger))
        if args.xlsx:
            print(f"已导出 {args.xlsx}")
    return 0
