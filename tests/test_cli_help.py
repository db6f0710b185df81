"""A command line that explains itself: help on every option, names listed where a name is asked
for, a quiet first start (no library chatter, no warnings), and output that ends with a newline."""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.cli import build_parser
from scheduler.names import JOB_NAMES

ROOT = Path(__file__).resolve().parents[1]


def _subcommands(parser: argparse.ArgumentParser, prefix: str = "gridbot"):
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subcommands(sub, f"{prefix} {name}")


def test_every_option_and_argument_has_help():
    missing = []
    for where, parser in _subcommands(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                missing.append(f"{where} {'/'.join(action.option_strings) or action.dest}")
    assert missing == [], missing
    # and every subcommand says what it is for
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            assert all(a.help for a in action._choices_actions), [a.dest for a in action._choices_actions]


@pytest.fixture
def gridbot(tmp_path):
    env = {**os.environ, "GRIDBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/gridbot.db",
           "GRIDBOT_CONFIG": str(tmp_path / "none.toml")}
    env.pop("GRIDBOT_LOG_LEVEL", None)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bot", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)

    run.env = env  # type: ignore[attr-defined]
    return run


def test_jobs_run_without_a_name_lists_the_jobs(gridbot):
    out = gridbot("jobs", "run")
    assert out.returncode == 0, out.stderr
    listed = [ln.split()[0] for ln in out.stdout.splitlines()[1:]]
    assert listed == list(JOB_NAMES)
    assert "NAME" in out.stdout.splitlines()[0]
    unknown = gridbot("jobs", "run", "no-such-job")
    assert unknown.returncode == 2 and all(n in unknown.stderr for n in JOB_NAMES)


def test_jobs_run_before_init_says_what_to_do(gridbot):
    out = gridbot("jobs", "run", "ledger")
    assert out.returncode == 2
    assert out.stderr.strip() == "数据库还没有建表：请先运行 gridbot init", out.stderr[-2000:]


def test_bench_without_a_name_lists_the_benchmarks(gridbot):
    out = gridbot("bench")
    assert out.returncode == 0 and set(out.stdout.split()) >= {"parse", "import", "callbacks", "reminders", "wave"}


def test_every_commands_output_ends_with_a_newline(gridbot):
    assert gridbot("init").returncode == 0
    assert gridbot("import", "--example").returncode == 0
    commands = [("jobs", "list"), ("jobs", "list", "--json"), ("jobs", "run"), ("jobs", "run", "progress"),
                ("bench",), ("ledger", "--date", "2026-02-10"), ("ledger", "--json", "--date", "2026-02-10"),
                ("demo", "--roster-path"), ("parse", "3-2-501 36.5 正常"), ("import", "--example"), ("init",)]
    for args in commands:
        out = gridbot(*args)
        assert out.returncode == 0, (args, out.stderr[-2000:])
        assert out.stdout and out.stdout.endswith("\n"), (args, out.stdout[-200:])
        assert not out.stderr or out.stderr.endswith("\n"), (args, out.stderr[-200:])


def test_jobs_list_and_its_log_stay_apart_in_one_stream(gridbot):
    """stdout and the log in one file (2>&1): each printed line whole, on a line of its own."""
    env = {**gridbot.env, "GRIDBOT_LOG_LEVEL": "DEBUG"}
    out = subprocess.run([sys.executable, "-m", "bot", "jobs", "list"], env=env, capture_output=False,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
                         cwd=Path(env["GRIDBOT_CONFIG"]).parent)
    assert out.returncode == 0
    assert out.stdout.endswith("\n")
    job_lines = [ln for ln in out.stdout.splitlines() if ln.split(" ")[0] in JOB_NAMES]
    assert [ln.split()[0] for ln in job_lines] == list(JOB_NAMES)
    assert all(re.fullmatch(r"[a-z-]+ +(\d{4}-\d\d-\d\dT[\d:+]+|-)", ln) for ln in job_lines), job_lines


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_first_start_says_nothing_it_need_not(gridbot, tmp_path):
    """`gridbot serve` on a new database: gridbot's own lines only; no warning, no library chatter."""
    env = {k: v for k, v in gridbot.env.items() if not k.startswith(("GRIDBOT_WECOM", "GRIDBOT_BRIDGE", "GRIDBOT_REDIS"))}
    proc = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--port", str(_free_port())], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        err: list[str] = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()  # type: ignore[union-attr]
            if not line:
                break
            err.append(line)
            if "catch-up queued" in line or "catch-up failed" in line:
                break
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest = proc.communicate(timeout=30)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            rest = proc.communicate()[1]
    log = "".join(err) + rest
    assert "listening on" in log, log
    for noise in ("ERROR", "Traceback", "tentatively", "apscheduler", "setup plugin", "Context impl",
                  "Will assume", "UserWarning", "DeprecationWarning", "WARNING gridbot.scheduler"):
        assert noise not in log, (noise, log)
    # What does warn on a new database is gridbot's own advice (no staff yet, a channel unset), not chatter.
    warned = [ln for ln in log.splitlines() if " WARNING " in ln]
    assert all(re.search(r" WARNING (gridbot|bot|handlers)\.", ln) for ln in warned), warned
