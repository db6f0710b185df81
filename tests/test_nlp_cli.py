"""``gridbot parse`` functions: one text, JSON lines, whole stdin."""

from __future__ import annotations

import io
import json

from nlp.cli import run_parse


def test_one_text_pretty() -> None:
    out = io.StringIO()
    assert run_parse("俺发烧了 38.2", False, io.StringIO(), out) == 0
    data = json.loads(out.getvalue())
    assert data["text"] == "俺发烧了 38.2"
    assert data["fever"] is True
    assert "俺发烧了" in out.getvalue()  # ensure_ascii=False
    assert "\n  " in out.getvalue()  # pretty


def test_whole_stdin_is_one_text() -> None:
    out = io.StringIO()
    assert run_parse(None, False, io.StringIO("体温：36.5\n咳嗽：无\n"), out) == 0
    data = json.loads(out.getvalue())
    assert data["checkin"] == "safe"
    assert data["temperature"] == 36.5


def test_jsonl_keeps_order_and_alignment() -> None:
    lines = [
        json.dumps({"text": "36.5 正常"}, ensure_ascii=False),
        "not json",
        json.dumps({"no_text": 1}),
        json.dumps({"text": "孩子发烧38.2"}, ensure_ascii=False),
    ]
    out = io.StringIO()
    status = run_parse(None, True, io.StringIO("\n".join(lines) + "\n"), out)
    assert status == 1
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(rows) == 4
    assert rows[0]["text"] == "36.5 正常" and rows[0]["checkin"] == "safe"
    assert "error" in rows[1] and "error" in rows[2]
    assert rows[3]["fever"] is True
    for row in (rows[0], rows[3]):
        assert {"checkin", "fever", "temperature", "symptoms", "request", "emergency"} <= set(row)


def test_jsonl_all_good_exits_zero() -> None:
    out = io.StringIO()
    assert run_parse(None, True, io.StringIO('{"text": "全家平安"}\n'), out) == 0
    assert json.loads(out.getvalue())["checkin"] == "safe"


def test_parse_shows_subjects_and_uncertain() -> None:
    out = io.StringIO()
    assert run_parse("3号楼王某 38.5", False, io.StringIO(), out) == 0
    data = json.loads(out.getvalue())
    assert data["uncertain"] is False
    assert data["subjects"][0]["name"] == "王某" and data["subjects"][0]["fever"] is True
