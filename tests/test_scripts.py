"""The test command on a bare machine: scripts/services finds what is missing (PostgreSQL, Redis,
Node.js; chromium and fonts-noto-cjk for the browser tests), installs it with apt-get where it can,
announcing each install on one line, or stops with one line saying what to install; and the CI
switch: CI=true fails on an unreachable server, CI unset or false skips with a closing summary.

A fresh machine is simulated, never made: a PATH without the servers' programs, apt-get and id
replaced by recording fakes, the test URLs pointing at closed ports. The real servers stay up.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import strict, summary

ROOT = Path(__file__).resolve().parents[1]
# What the scripts use besides bash's builtins; nothing that belongs to PostgreSQL, Redis or Node.
TOOLS = ("bash", "env", "ls", "sleep", "seq", "sort", "tail", "cat", "grep", "sed", "mkdir", "dirname",
         "dpkg-query")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is: nothing listens there


@pytest.fixture
def bare(tmp_path):
    """run(script, uid=0, apt=False): the script on a machine without the servers."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for tool in TOOLS:
        if (found := shutil.which(tool)) is not None:
            (bin_ / tool).symlink_to(found)
    log = tmp_path / "apt.log"
    (tmp_path / "conf").mkdir()

    def run(*args: str, uid: int = 0, apt: bool = False, env: dict[str, str] | None = None):
        (bin_ / "id").write_text(f"#!/bin/sh\necho {uid}\n")
        (bin_ / "id").chmod(0o755)
        fake_apt = bin_ / "apt-get"
        if apt:
            fake_apt.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
            fake_apt.chmod(0o755)
        elif fake_apt.exists():
            fake_apt.unlink()
        environment = {"PATH": str(bin_), "HOME": str(tmp_path), "GRIDBOT_PG_CONF_DIR": str(tmp_path / "conf"),
                       "GRIDBOT_TEST_PG": f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/test",
                       "GRIDBOT_TEST_REDIS": f"redis://127.0.0.1:{closed_port()}/0", **(env or {})}
        out = subprocess.run([str(bin_ / "bash"), str(ROOT / "scripts" / args[0]), *args[1:]], env=environment,
                             capture_output=True, text=True, timeout=60)
        out.apt = log.read_text().splitlines() if log.exists() else []  # type: ignore[attr-defined]
        return out

    return run


def lines(out) -> list[str]:
    return (out.stdout + out.stderr).splitlines()


def test_without_apt_it_stops_with_one_line_saying_what_to_install(bare):
    out = bare("services")
    assert out.returncode == 1
    assert lines(out) == [out.stderr.strip()], lines(out)
    line = out.stderr.strip()
    assert line.startswith("services: missing postgresql redis-server nodejs npm (no apt-get here)")
    assert "apt-get install postgresql redis-server nodejs npm" in line and "CI=false" in line


def test_not_root_it_stops_and_never_calls_apt(bare):
    out = bare("services", uid=1000, apt=True)
    assert out.returncode == 1 and len(lines(out)) == 1
    assert "(not root)" in out.stderr and out.apt == []


def test_the_test_command_stops_before_running_anything(bare):
    out = bare("test")
    assert out.returncode == 1
    assert len(lines(out)) == 1 and "missing postgresql redis-server" in out.stderr  # no setup, no pytest


def test_as_root_with_apt_it_installs_announcing_each_install(bare):
    out = bare("services", apt=True)
    said = [ln for ln in out.stdout.splitlines() if "apt-get install" in ln]
    browser = "chromium" if _has_cjk_fonts() else "chromium fonts-noto-cjk"
    assert said == ["services: apt-get install postgresql redis-server nodejs npm (as root, for the tests)",
                    f"services: apt-get install {browser} (as root, for the tests)"]
    installs = [ln for ln in out.apt if ln.startswith("install")]
    assert len(installs) == 2 and installs[0].endswith("postgresql redis-server nodejs npm")
    assert installs[1].endswith(browser)
    assert out.apt.count("update -qq") == 1
    # the fake installed nothing, so starting fails, and says so
    assert out.returncode == 1 and "PostgreSQL did not start" in out.stderr


def test_dry_run_says_what_it_would_do_and_does_nothing(bare):
    out = bare("services", "--dry-run", apt=True)
    assert out.returncode == 0 and out.apt == []
    assert "services: would start PostgreSQL" in out.stdout and "services: would start Redis" in out.stdout


def _has_cjk_fonts() -> bool:
    return subprocess.run(["dpkg-query", "-W", "fonts-noto-cjk"], capture_output=True).returncode == 0


def test_with_the_servers_running_it_does_nothing(tmp_path):
    """On this machine (servers up): no install, no start, nothing said; a fake apt-get would tell."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    log = tmp_path / "apt.log"
    (bin_ / "apt-get").write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    (bin_ / "apt-get").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}"}
    env.pop("GRIDBOT_TEST_PG", None)
    env.pop("GRIDBOT_TEST_REDIS", None)
    out = subprocess.run(["bash", str(ROOT / "scripts/services"), "--dry-run"], env=env, capture_output=True,
                         text=True, timeout=60)
    if "would start" in out.stdout or "missing" in out.stderr:
        pytest.skip("the servers are not running here")
    assert out.returncode == 0 and not log.exists()


# --- CI=true fails, CI unset or false skips ---------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    (None, False), ("", False), ("false", False), ("0", False), ("no", False),
    ("true", True), ("TRUE", True), ("1", True), ("yes", True)])
def test_ci_is_read_by_its_value(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert strict() is expected


def test_summary_counts_the_skips_by_server():
    reasons = ["tests/conftest.py:37: Skipped: PostgreSQL not reachable at postgresql://x: refused"] * 3
    reasons += ["Skipped: Redis not reachable at redis://y: refused", "Skipped: needs chromium"]
    assert summary(reasons) == [
        "3 tests skipped: PostgreSQL is not running (CI is not 'true'; CI=true makes this a failure, "
        "./scripts/services starts it)",
        "1 test skipped: Redis is not running (CI is not 'true'; CI=true makes this a failure, "
        "./scripts/services starts it)"]


@pytest.mark.parametrize("ci", [None, "false", "true"])
def test_server_tests_skip_or_fail_by_ci(tmp_path, ci):
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(GRIDBOT_TEST_PG=f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/test",
               GRIDBOT_TEST_REDIS=f"redis://127.0.0.1:{closed_port()}/0")
    if ci is not None:
        env["CI"] = ci
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/test_storage_basics.py::test_household_key_is_unique",
                          "tests/test_state.py::test_redis_keys_stay_under_prefix"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if ci == "true":
        assert out.returncode == 1, out.stdout[-2000:]
        assert "skipped: PostgreSQL is not running" not in out.stdout
    else:
        assert out.returncode == 0, out.stdout[-2000:]
        assert "1 test skipped: PostgreSQL is not running (CI is not 'true'" in out.stdout
        assert "1 test skipped: Redis is not running" in out.stdout
        assert "1 passed, 2 skipped" in out.stdout  # the SQLite half still runs
