from datetime import time, timedelta

import pytest

from bot.cli import main
from bot.config import ConfigError, load_settings, parse_duration
from bot.logs import redact


def test_defaults_match_the_interface_doc(tmp_path):
    s = load_settings(env={}, toml_path=tmp_path / "none.toml")
    assert s.database_url == "sqlite+aiosqlite:///gridbot.db"
    assert s.redis_url is None and s.port == 8080 and s.host == "127.0.0.1"
    assert s.reminder_times == [time(8, 0), time(14, 0)]
    assert s.escalate_steps == [timedelta(minutes=15), timedelta(minutes=30)]
    assert s.followup_delta == timedelta(hours=2) and s.missed_delta == timedelta(hours=4)
    assert s.fever_at == 37.3 and s.quarantine_days == 14


def test_environment_overrides_toml(tmp_path):
    cfg = tmp_path / "gridbot.toml"
    cfg.write_text('port = 9000\nfever_at = 37.5\nledger_at = "20:30"\n', encoding="utf-8")
    s = load_settings(env={"GRIDBOT_PORT": "9100"}, toml_path=cfg)
    assert s.port == 9100 and s.fever_at == 37.5 and s.ledger_at == "20:30"


@pytest.mark.parametrize("env", [
    {"GRIDBOT_PORT": "eighty"},
    {"GRIDBOT_TIMEZONE": "Mars/Olympus"},
    {"GRIDBOT_ESCALATE_AFTER": "soon"},
    {"GRIDBOT_QUARANTINE_REMINDERS": "8am"},
])
def test_bad_values_fail_at_start_with_the_key(env, tmp_path):
    with pytest.raises(ConfigError):
        load_settings(env=env, toml_path=tmp_path / "none.toml")


def test_durations():
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("15m") == parse_duration("15") == timedelta(minutes=15)
    assert parse_duration("1d") == timedelta(days=1)
    with pytest.raises(ValueError):
        parse_duration("-5m")


def test_redaction_masks_phones_and_temperatures():
    line = redact("resident 13812345678 reported 38.5℃ and 37度")
    assert "13812345678" not in line and "38.5" not in line and "37度" not in line
    assert "138****5678" in line
    assert redact("E23 household 12 room 3-2-501") == "E23 household 12 room 3-2-501"


def test_unknown_bench_exits_2(capsys):
    assert main(["bench", "no-such-bench"]) == 2
    assert "choose from" in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(__import__("bot.cli").cli.COMMANDS))
def test_every_command_is_built(command):
    from bot.cli import resolve

    assert callable(resolve(command)), f"gridbot {command} is routed to nothing"


def test_parse_command_end_to_end():
    import json
    import subprocess
    import sys

    lines = "\n".join(json.dumps({"text": t}, ensure_ascii=False) for t in ["36.5 正常", "发烧38度"])
    out = subprocess.run([sys.executable, "-m", "bot", "parse", "--jsonl"], input=lines, capture_output=True,
                         text=True, encoding="utf-8", timeout=60, check=True).stdout.splitlines()
    records = [json.loads(x) for x in out]
    assert [r["checkin"] for r in records] == ["safe", "abnormal"]
    assert records[1]["fever"] is True and records[1]["temperature"] == 38.0
    one = subprocess.run([sys.executable, "-m", "bot", "parse"], input="36.5 正常\n", capture_output=True,
                         text=True, encoding="utf-8", timeout=60, check=True).stdout
    assert json.loads(one)["text"] == "36.5 正常"
