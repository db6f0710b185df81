"""`gridbot bench import`: how long a district-sized roster takes to load, and to re-load.

A synthetic roster (≈2.5 residents a household, 48 households a building, 300 a grid, a courtyard
every 20th building, 1% in home quarantine, 0.5% key persons) is written as a CSV folder to a temp
directory and imported into a fresh SQLite file and a fresh PostgreSQL database. Each size reports
the first import, a re-import (the no-change path), the ledger of all grids and, as the baseline from the same run, reading
and validating the same rows without writing anything, so the ratio shows what the database costs.

    gridbot bench import [--households 20000,100000] [--db sqlite|postgres|both] [--no-xlsx]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from bot.config import Settings
from storage import roster
from storage.db import Database
from storage.migrate import upgrade
from tests.pg import PG_ADMIN_URL, create_temp_database, drop_database

PER_BUILDING = 48
PER_GRID = 300


def generate(households: int, folder: Path) -> tuple[int, int]:
    """Writes 楼栋.csv, 工作人员.csv and 居民.csv; returns (households, residents)."""
    folder.mkdir(parents=True, exist_ok=True)
    n_buildings = max(1, -(-households // PER_BUILDING))
    n_grids = max(1, -(-households // PER_GRID))
    n_comms = max(1, -(-n_grids // 5))
    n_streets = max(1, -(-n_comms // 14))
    grid_of = [f"网格{g + 1:04d}" for g in range(n_grids)]
    comm_of_grid = [g * n_comms // n_grids for g in range(n_grids)]
    street_of_comm = [c * n_streets // n_comms for c in range(n_comms)]
    channels = ("wecom", "aibot", "bridge")
    buildings = []
    with open(folder / "楼栋.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(roster.COLUMNS[roster.SHEET_BUILDINGS])
        for b in range(n_buildings):
            g = b * n_grids // n_buildings
            c = comm_of_grid[g]
            courtyard = b % 20 == 19
            name = f"{b + 1}号院" if courtyard else f"{b + 1}号楼"
            buildings.append((name, courtyard, b % 3))
            w.writerow((f"街道{street_of_comm[c] + 1:02d}", f"社区{c + 1:03d}", grid_of[g], name,
                        f"chat-{b + 1}", channels[b % 3]))
    with open(folder / "工作人员.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(roster.COLUMNS[roster.SHEET_STAFF])
        for g, grid in enumerate(grid_of):
            w.writerow((f"网格员{g}", "网格员", f"139{g:08d}", f"gw{g}", "wecom", grid))
            w.writerow((f"志愿者{g}", "志愿者", "", f"vol{g}", "wecom", grid))
        for c in range(n_comms):
            grids = "、".join(grid_of[g] for g in range(n_grids) if comm_of_grid[g] == c)
            w.writerow((f"网格长{c}", "网格长", "", f"gl{c}", "wecom", grids))
            w.writerow((f"民警{c}", "民警", "", f"police{c}", "wecom", grids))
            w.writerow((f"医护{c}", "医护", "", f"medic{c}", "wecom", grids))
        for s in range(n_streets):
            w.writerow((f"值班{s}", "街道值班", "", f"duty{s}", "wecom", f"街道{s + 1:02d}"))
            w.writerow((f"干部{s}", "街道干部", "", f"cadre{s}", "wecom", f"街道{s + 1:02d}"))
    residents = 0
    start = date(2026, 2, 1)
    with open(folder / "居民.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(roster.COLUMNS[roster.SHEET_RESIDENTS])
        for h in range(households):
            name, courtyard, ch = buildings[h // PER_BUILDING]
            k = h % PER_BUILDING
            unit = "" if courtyard else str(k // 24 + 1)
            room = str(k + 1) if courtyard else f"{(k % 24) // 4 + 1}0{k % 4 + 1}"
            g = (h // PER_BUILDING) * n_grids // n_buildings
            c = comm_of_grid[g]
            for p in range(2 if h % 2 else 3):
                residents += 1
                category, qstart, team = "常住", "", ("", "", "")
                if residents % 100 == 0:
                    category, qstart = "居家隔离", (start + timedelta(days=residents % 14)).isoformat()
                    team = (f"cadre{street_of_comm[c]}", "", f"medic{c}")
                elif residents % 200 == 1:
                    category, team = "重点人员", (f"cadre{street_of_comm[c]}", f"police{c}", f"medic{c}")
                w.writerow((name, unit, room, f"居民{h}-{p}", f"138{residents:08d}",
                            f"r{residents}" if p < 2 else "", channels[ch] if p < 2 else "",
                            category, qstart, *team))
    return households, residents


def write_xlsx(folder: Path, path: Path) -> None:
    import openpyxl

    wb = openpyxl.Workbook(write_only=True)
    for sheet in roster.SHEETS:
        ws = wb.create_sheet(sheet)
        with open(folder / f"{sheet}.csv", encoding="utf-8", newline="") as f:
            for row in csv.reader(f):
                ws.append(row)
    wb.save(path)


def read_and_validate(path: Path) -> tuple[int, int]:
    """The baseline: every row read and validated, nothing written. Returns (rows, rejected)."""
    sheets = roster.read_roster(path)
    known = roster.Known()
    n = bad = 0
    for _, r in sheets[roster.SHEET_BUILDINGS].rows:
        rec = roster.validate_building(0, r)
        n += 1
        if isinstance(rec, roster.BuildingRec):
            known.buildings[rec.name] = rec.channel
            known.grids.add(rec.grid)
            known.streets.add(rec.street)
        else:
            bad += 1
    for _, r in sheets[roster.SHEET_STAFF].rows:
        rec = roster.validate_staff(0, r, known)
        n += 1
        if isinstance(rec, roster.StaffRec):
            known.staff_uids.add(rec.uid)
        else:
            bad += 1
    for _, r in sheets[roster.SHEET_RESIDENTS].rows:
        n += 1
        bad += isinstance(roster.validate_resident(0, r, known), roster.RowError)
    return n, bad


def _timed_import(url: str, path: Path) -> tuple[float, float, float]:
    """Seconds for the first import, the re-import, and the ledger of every grid afterwards."""
    from storage.ledger import compute_ledger

    upgrade(url)
    settings = Settings(database_url=url)

    async def go() -> tuple[float, float, float]:
        db = Database(url)
        try:
            t0 = time.perf_counter()
            first = await roster.import_roster(db, path, tz=settings.tz, quarantine_days=settings.quarantine_days)
            t1 = time.perf_counter()
            again = await roster.import_roster(db, path, tz=settings.tz, quarantine_days=settings.quarantine_days)
            t2 = time.perf_counter()
            # Nobody has reported: every household is listed as unreported, the ledger's worst case.
            async with db.session() as s:
                await compute_ledger(s, date(2026, 2, 10), settings.tz)
            t3 = time.perf_counter()
        finally:
            await db.dispose()
        if first.errors or again.errors or again.changed:
            raise RuntimeError(f"benchmark roster did not load cleanly: {first.errors[:3] or again.counts}")
        return t1 - t0, t2 - t1, t3 - t2

    return asyncio.run(go())


def run(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="gridbot bench import", description=__doc__.splitlines()[0])
    p.add_argument("--households", default="20000,100000", help="comma-separated sizes")
    p.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    p.add_argument("--no-xlsx", action="store_true", help="skip the .xlsx figure (20,000 households)")
    args = p.parse_args(argv)
    sizes = [int(x) for x in args.households.split(",") if x.strip()]
    backends = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    rows: list[tuple] = []
    work = Path(tempfile.mkdtemp(prefix="gridbot-bench-import-"))
    print(f"{os.cpu_count()} CPUs; rosters in {work}")
    try:
        for n in sizes:
            folder = work / f"csv-{n}"
            households, residents = generate(n, folder)
            t0 = time.perf_counter()
            read_and_validate(folder)
            base = time.perf_counter() - t0
            rows.append((households, residents, "read+validate (csv)", "baseline", base, residents / base))
            fmts = [("csv", folder)]
            if n == 20000 and not args.no_xlsx:
                xlsx = work / f"roster-{n}.xlsx"
                write_xlsx(folder, xlsx)
                t0 = time.perf_counter()
                read_and_validate(xlsx)
                xbase = time.perf_counter() - t0
                rows.append((households, residents, "read+validate (xlsx)", "baseline", xbase, residents / xbase))
                fmts.append(("xlsx", xlsx))
            for fmt, path in fmts:
                for backend in backends:
                    if fmt == "xlsx" and backend != "sqlite":
                        continue
                    if backend == "sqlite":
                        url = f"sqlite+aiosqlite:///{work}/bench-{n}-{fmt}.db"
                        first, again, ledger = _timed_import(url, path)
                    else:
                        try:
                            pg_url = asyncio.run(create_temp_database("gridbot_bench", PG_ADMIN_URL))
                        except OSError as exc:
                            print(f"PostgreSQL not reachable ({exc}); skipped")
                            continue
                        try:
                            first, again, ledger = _timed_import(pg_url, path)
                        finally:
                            asyncio.run(drop_database(pg_url, PG_ADMIN_URL))
                    rows.append((households, residents, f"import ({fmt})", backend, first, residents / first))
                    rows.append((households, residents, f"re-import, no change ({fmt})", backend, again,
                                 residents / again))
                    if fmt == "csv":
                        rows.append((households, residents, "ledger, all grids", backend, ledger,
                                     households / ledger))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'households':>10} {'residents':>10}  {'what':<30} {'backend':<9} {'seconds':>8} {'rows/s':>9}")
    for h, r, what, backend, secs, rate in rows:
        print(f"{h:>10} {r:>10}  {what:<30} {backend:<9} {secs:>8.2f} {rate:>9.0f}")
    slow = [x for x in rows if x[0] >= 100000 and x[3] == "sqlite" and x[2] == "import (csv)" and x[4] >= 60]
    if slow:
        print("TARGET MISSED: 100,000 households must import in under 60 s on SQLite")
        return 1
    return 0
