"""The `gridbot` command. Each subcommand lives with the code it drives; this file only routes.

A command whose module is not built yet says so plainly and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

# command -> (module, function): the function takes the parsed arguments and returns an exit code.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("storage.migrate", "cli_init"),
    "import": ("storage.roster", "cli_import"),
    "serve": ("bot.app", "cli_serve"),
    "demo": ("bot.demo", "cli_demo"),
    "chat": ("bot.demo", "cli_chat"),
    "parse": ("nlp.cli", "cli_parse"),
    "ledger": ("storage.ledger", "cli_ledger"),
    "jobs": ("scheduler.cli", "cli_jobs"),
    "passwd": ("storage.staffauth", "cli_passwd"),
    "bench": ("benchmarks", "cli_bench"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gridbot", description="一楼一网格一微信群: check-ins, escalations, ledgers")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("init", help="create or migrate the database (safe to repeat)")

    s = sub.add_parser("import", help="load a roster (.xlsx, or a folder of .csv files)")
    s.add_argument("path")
    s.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")

    s = sub.add_parser("serve", help="run the web server and the scheduler")
    s.add_argument("--host")
    s.add_argument("--port", type=int)

    sub.add_parser("demo", help="play one simulated day of the example community")

    s = sub.add_parser("chat", help="talk to the bot on the console as a resident or worker")
    s.add_argument("--user", required=True, help="the 微信ID of the resident or staff member")
    s.add_argument("--group", help="write in this group chat id instead of privately")

    s = sub.add_parser("parse", help="print the parsed record of a message")
    s.add_argument("text", nargs="?")
    s.add_argument("--jsonl", action="store_true", help='read {"text": ...} lines from stdin')

    s = sub.add_parser("ledger", help="the day's ledger (台账)")
    s.add_argument("--grid")
    s.add_argument("--date")
    s.add_argument("--xlsx", metavar="FILE")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("jobs", help="scheduled jobs")
    jsub = s.add_subparsers(dest="jobs_command", required=True, metavar="list|run")
    j = jsub.add_parser("list")
    j.add_argument("--json", action="store_true")
    j = jsub.add_parser("run")
    j.add_argument("name")

    s = sub.add_parser("passwd", help="set a staff member's dashboard password")
    s.add_argument("staff_id", metavar="STAFF_ID", help="the staff member's 微信ID")

    s = sub.add_parser("bench", help="repeatable benchmarks")
    s.add_argument("name")
    s.add_argument("args", nargs=argparse.REMAINDER)
    return p


def resolve(command: str) -> Callable[[argparse.Namespace], int] | None:
    module, func = COMMANDS[command]
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None
        raise
    return getattr(mod, func, None)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run = resolve(args.command)
    if run is None:
        print(f"gridbot {args.command}: not built yet in this version", file=sys.stderr)
        return 2
    from bot.logs import setup_logging

    setup_logging()
    try:
        return int(run(args) or 0)
    except KeyboardInterrupt:
        return 130
