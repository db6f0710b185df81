"""The `gridbot` command. Each subcommand lives with the code it drives, and this file routes to it;
the commands over storage (init, import, passwd) and `bench` are here, so that storage/ stays free
of configuration and of the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

# command -> (module, function): the function takes the parsed arguments and returns an exit code.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("bot.cli", "cli_init"),
    "import": ("bot.cli", "cli_import"),
    "serve": ("bot.app", "cli_serve"),
    "demo": ("bot.demo", "cli_demo"),
    "chat": ("bot.demo", "cli_chat"),
    "parse": ("nlp.cli", "cli_parse"),
    "ledger": ("bot.ledger_cmd", "cli_ledger"),
    "jobs": ("scheduler.cli", "cli_jobs"),
    "passwd": ("bot.cli", "cli_passwd"),
    "bench": ("bot.cli", "cli_bench"),
    "doctor": ("bot.doctor", "cli_doctor"),
    "staff": ("bot.staff_cmd", "cli_staff"),
    "outbox": ("bot.staff_cmd", "cli_outbox"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gridbot", description="一楼一网格一微信群: check-ins, escalations, ledgers")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("init", help="create or migrate the database (safe to repeat)")

    s = sub.add_parser("import", help="load a roster (.xlsx, or a folder of .csv files)")
    what = s.add_mutually_exclusive_group(required=True)
    what.add_argument("path", nargs="?", metavar="PATH",
                      help="the roster: an .xlsx with sheets 楼栋, 工作人员, 居民, or a folder of 楼栋.csv etc.")
    what.add_argument("--example", action="store_true",
                      help="the example community shipped with gridbot (see `gridbot demo --roster-path`)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")

    s = sub.add_parser("serve", help="run the web server and the scheduler")
    s.add_argument("--host", help="address to listen on (default GRIDBOT_HOST, else 127.0.0.1)")
    s.add_argument("--port", type=int, help="port to listen on (default GRIDBOT_PORT, else 8080)")
    s.add_argument("--role", choices=["all", "web", "worker", "scheduler"], default="all",
                   help="this process's part: web (answers callbacks into the inbox and the Redis stream), "
                        "worker (handles messages, sends the outbox), scheduler (timed jobs; one leads), "
                        "all (default)")
    s.add_argument("--workers", type=int, default=0, metavar="N",
                   help="also start N worker processes (--role worker) and stop them on exit; needs GRIDBOT_REDIS_URL")

    s = sub.add_parser("demo", help="play one simulated day of the example community")
    s.add_argument("--roster-path", action="store_true",
                   help="only print the path of the example roster the demo plays")

    s = sub.add_parser("chat", help="talk to the bot on the console as a resident or worker")
    s.add_argument("--user", required=True, help="the 微信ID of the resident or staff member")
    s.add_argument("--group", help="write in this group chat id instead of privately")

    s = sub.add_parser("parse", help="print the parsed record of a message")
    s.add_argument("text", nargs="?", metavar="TEXT", help="the message, e.g. '3-2-501 36.5 正常'")
    s.add_argument("--jsonl", action="store_true", help='read {"text": ...} lines from stdin')

    s = sub.add_parser("ledger", help="the day's ledger (台账)")
    s.add_argument("--grid", metavar="GRID", help="only this grid (网格 name as in the roster); default all")
    s.add_argument("--date", help="the day, or the last day of a range (default today)")
    s.add_argument("--from", dest="first", metavar="DATE", help="the first day of a range, for --xlsx")
    s.add_argument("--xlsx", metavar="FILE", help="write the 台账 workbook")
    s.add_argument("--json", action="store_true", help="print the ledger as JSON instead of a table")

    from scheduler.names import JOB_NAMES

    s = sub.add_parser("jobs", help="the scheduled jobs: when they run next; run one now")
    jsub = s.add_subparsers(dest="jobs_command", required=True, metavar="list|run")
    j = jsub.add_parser("list", help="each job and its next run time")
    j.add_argument("--json", action="store_true", help="as JSON: [{name, next_run}]")
    j = jsub.add_parser("run", help="run one job now (its messages go out through a running server)")
    j.add_argument("name", nargs="?", metavar="NAME",
                   help=f"the job: {', '.join(JOB_NAMES)}; without it, the jobs are listed")
    j.add_argument("--slot", metavar="am|pm",
                   help="quarantine-reminders only: send this reminder slot even if it is past its grace "
                        "(a missed slot, on purpose); with --date")
    j.add_argument("--date", metavar="YYYY-MM-DD", help="with --slot: the day of the slot (default today)")

    s = sub.add_parser("passwd", help="set a staff member's dashboard password")
    s.add_argument("staff_id", metavar="STAFF_ID", help="the staff member's 微信ID")

    sub.add_parser("doctor", help="check configuration, database, Redis, time zone, channels and who can be "
                                  "reached; exit 1 when something needs a person")

    s = sub.add_parser("staff", help="manage staff without re-importing the roster")
    ssub = s.add_subparsers(dest="staff_command", required=True, metavar="add|list|disable")
    a = ssub.add_parser("add", help="add a staff member, or update and re-enable one (matched on channel and 微信ID)")
    a.add_argument("--name", required=True, help="姓名")
    a.add_argument("--role", required=True, help="角色: 网格员, 网格长, 街道干部, 民警, 医护, 志愿者 or 街道值班")
    a.add_argument("--id", required=True, metavar="微信ID",
                   help="their id on their channel; several separated by 、 when they differ per channel")
    a.add_argument("--channel", default="wecom", metavar="渠道",
                   help="wecom, aibot, bridge, or several tried in order: wecom、bridge (default wecom)")
    a.add_argument("--phone", help="手机 (shown to their colleagues on alerts)")
    a.add_argument("--grid", action="append", metavar="GRID", help="a grid they cover (repeat for several)")
    a.add_argument("--street", action="append", metavar="STREET",
                   help="a street they cover (街道值班, 街道干部 only; neither --grid nor --street: the district)")
    a = ssub.add_parser("list", help="staff with their channels, scope and whether a password is set")
    a.add_argument("--all", action="store_true", help="disabled staff too")
    a = ssub.add_parser("disable", help="stop alerts and logins for a staff member (the row is kept)")
    a.add_argument("who", metavar="ID", help="their 微信ID (or the id number `staff list` shows)")

    s = sub.add_parser("outbox", help="what the bot sent to whom, and what failed")
    s.add_argument("--failed", action="store_true", help="only messages that failed or reached no one")
    s.add_argument("--to", metavar="ID", help="only messages to this user id or group chat id")
    s.add_argument("--limit", type=int, default=50, help="at most this many, newest first (default 50)")

    s = sub.add_parser("bench", help="repeatable benchmarks (from a source checkout); no NAME lists them")
    s.add_argument("name", nargs="?", metavar="NAME", help="the benchmark; without it, the names are listed")
    s.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="passed to the benchmark (try --help)")
    return p


def resolve(command: str) -> Callable[[argparse.Namespace], int]:
    module, func = COMMANDS[command]
    return getattr(importlib.import_module(module), func)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run = resolve(args.command)
    from bot.logs import setup_logging

    setup_logging()
    # Line by line, so that what a command prints and the log it writes stay in order in one file.
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(line_buffering=True)
    from bot.config import ConfigError

    try:
        return int(run(args) or 0)
    except ConfigError as exc:  # a bad setting: one line naming it, no traceback
        print(f"gridbot {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        sys.stdout.flush()


# --- gridbot init ---------------------------------------------------------------------------------


def cli_init(args: argparse.Namespace) -> int:
    from bot.config import load_settings
    from storage.migrate import _safe_url, upgrade

    settings = load_settings()
    upgrade(settings.database_url)
    print(f"database ready: {_safe_url(settings.database_url)}")
    return 0


# --- gridbot import -------------------------------------------------------------------------------


def cli_import(args: argparse.Namespace) -> int:
    from bot.config import load_settings
    from bot.data import EXAMPLE_ROSTER

    settings = load_settings()
    progress = not getattr(args, "no_progress", False) and sys.stdout.isatty()
    if not getattr(args, "example", False):
        return asyncio.run(_import(Path(args.path), settings, progress))
    import tempfile
    from datetime import datetime

    today = datetime.now(settings.tz).date()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / EXAMPLE_ROSTER.name
        shifted = example_roster_for(today, path)
        if shifted:
            print(f"示例名册：居家隔离开始日期按今天 {today} 平移 {shifted} 天（名册以 {EXAMPLE_DAY} 为“今天”）")
        return asyncio.run(_import(path, settings, progress))


# The day the example roster is written for (the demo's day): its quarantines are on their days 10, 6
# and 3 then. `gridbot import --example` moves every 隔离开始 by (today - EXAMPLE_DAY), so that a
# first start finds current quarantines (not ones that ended months ago) and the demo keeps its day.
EXAMPLE_DAY = date(2026, 2, 10)


def example_roster_for(today, out: Path) -> int:
    """Writes the example roster to `out` with its quarantine start dates moved to be as recent
    relative to `today` as they are to EXAMPLE_DAY; returns the days moved."""
    from datetime import datetime, timedelta

    import openpyxl

    from bot.data import EXAMPLE_ROSTER

    shift = (today - EXAMPLE_DAY).days
    wb = openpyxl.load_workbook(EXAMPLE_ROSTER)
    ws = wb["居民"]
    header = [c.value for c in ws[1]]
    col = header.index("隔离开始") + 1
    for row in ws.iter_rows(min_row=2, min_col=col, max_col=col):
        cell = row[0]
        if isinstance(cell.value, datetime | date):
            cell.value = cell.value + timedelta(days=shift)
    wb.save(out)
    return shift


async def _import(path: Path, settings, progress: bool) -> int:
    from storage.db import Database
    from storage.roster import RosterError, SchemaMissing, import_roster

    db = Database(settings.database_url)
    try:
        report = await import_roster(db, path, tz=settings.tz, quarantine_days=settings.quarantine_days,
                                     progress=progress)
    except (SchemaMissing, RosterError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    finally:
        await db.dispose()
    for err in report.errors:
        print(str(err))
    print(report.summary())
    if report.errors:
        print(report.closing())
        return 1
    if not report.changed:
        print("没有变化。")
    return 0


# --- gridbot passwd -------------------------------------------------------------------------------

def read_password(stdin=None) -> str | None:
    """The first line of standard input when it is not a terminal; else asked twice."""
    import getpass

    stdin = stdin or sys.stdin
    if not stdin.isatty():
        return stdin.readline().rstrip("\r\n")
    first = getpass.getpass("新密码: ")
    second = getpass.getpass("再输入一次: ")
    if first != second:
        print("两次输入不一致", file=sys.stderr)
        return None
    return first


def cli_passwd(args: argparse.Namespace) -> int:
    from bot.config import load_settings
    from storage.staffauth import MIN_LENGTH

    settings = load_settings()
    password = read_password()
    if password is None:
        return 1
    if len(password) < MIN_LENGTH:
        print(f"密码至少 {MIN_LENGTH} 位", file=sys.stderr)
        return 1
    return asyncio.run(_passwd(settings, args.staff_id, password))


async def _passwd(settings, staff_uid: str, password: str) -> int:
    from storage.db import Database
    from storage.roster import SchemaMissing
    from storage.staffauth import set_password

    db = Database(settings.database_url)
    try:
        found = await set_password(db, staff_uid, password, tz=settings.tz)
    except SchemaMissing as exc:
        print(str(exc), file=sys.stderr)
        return 2
    finally:
        await db.dispose()
    if not found:
        print(f"没有微信ID为 {staff_uid!r} 的工作人员", file=sys.stderr)
        return 1
    print(f"已为 {staff_uid} 设置密码")
    return 0


# --- gridbot bench --------------------------------------------------------------------------------


def source_checkout() -> Path | None:
    """The source tree this copy of gridbot runs from, when it is one: the folder holding bot/ that
    also holds benchmarks/ and tests/ (neither is installed with the package)."""
    root = Path(__file__).resolve().parents[1]
    needed = (root / "pyproject.toml", root / "benchmarks" / "__init__.py", root / "tests" / "__init__.py")
    return root if all(p.is_file() for p in needed) else None


def cli_bench(args: argparse.Namespace) -> int:
    root = source_checkout()
    if root is None:
        print("gridbot bench: the benchmarks need a source checkout (they are not installed with the package)",
              file=sys.stderr)
        return 2
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import benchmarks

    if not args.name:
        print("\n".join(benchmarks.names()))
        return 0
    return benchmarks.main(args.name, list(args.args))
