"""Score the parser on the labelled sets (the contract's metrics, our own code)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nlp import parse

DATA = Path(__file__).parent / "data"
FIELDS = ("checkin", "fever", "temperature", "symptoms", "request", "emergency")


def _load(name: str) -> list[dict]:
    with (DATA / name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _temp_ok(gold: float | None, pred: float | None) -> bool:
    if gold is None or pred is None:
        return gold is None and pred is None
    return abs(gold - pred) <= 0.05


def score(rows: list[dict]) -> tuple[dict[str, float], list[str]]:
    tp = fn = fp = em_tp = em_fn = 0
    right = dict.fromkeys(FIELDS, 0)
    all_right = 0
    wrong: list[str] = []
    for gold in rows:
        pred = parse(gold["text"]).to_dict()
        ok = {
            "checkin": gold["checkin"] == pred["checkin"],
            "fever": gold["fever"] == pred["fever"],
            "temperature": _temp_ok(gold["temperature"], pred["temperature"]),
            "symptoms": set(gold["symptoms"]) == set(pred["symptoms"]),
            "request": gold["request"] == pred["request"],
            "emergency": gold["emergency"] == pred["emergency"],
        }
        if gold["fever"]:
            tp += pred["fever"]
            fn += not pred["fever"]
        else:
            fp += pred["fever"]
        if gold["emergency"]:
            em_tp += pred["emergency"]
            em_fn += not pred["emergency"]
        for f in FIELDS:
            right[f] += ok[f]
        if all(ok.values()):
            all_right += 1
        else:
            bad = [f for f in FIELDS if not ok[f]]
            wrong.append(f"{gold['text']!r}: " + ", ".join(f"{f} want {gold[f]!r} got {pred[f]!r}" for f in bad))
    n = len(rows)
    metrics = {
        "fever_recall": tp / (tp + fn) if tp + fn else 1.0,
        "fever_precision": tp / (tp + fp) if tp + fp else 1.0,
        "emergency_recall": em_tp / (em_tp + em_fn) if em_tp + em_fn else 1.0,
        "checkin_accuracy": right["checkin"] / n,
        "request_accuracy": right["request"] / n,
        "temperature_accuracy": right["temperature"] / n,
        "all_fields_right": all_right / n,
    }
    return metrics, wrong


BARS = {
    "fever_recall": 1.0,
    "emergency_recall": 1.0,
    "fever_precision": 0.97,
    "checkin_accuracy": 0.95,
    "request_accuracy": 0.95,
    "temperature_accuracy": 0.98,
    "all_fields_right": 0.90,
}


@pytest.mark.parametrize("name", ["nlp_dev.jsonl", "nlp_extra.jsonl"])
def test_labelled_set_meets_the_bars(name: str) -> None:
    rows = _load(name)
    metrics, wrong = score(rows)
    failed = {k: round(v, 3) for k, v in metrics.items() if v < BARS[k]}
    assert not failed, f"{failed}\n" + "\n".join(wrong[:30])


def test_extra_set_is_big_and_new() -> None:
    dev = {r["text"] for r in _load("nlp_dev.jsonl")}
    extra = _load("nlp_extra.jsonl")
    assert len(extra) >= 120
    assert not dev & {r["text"] for r in extra}
    for row in extra:
        assert set(row) >= {"text", *FIELDS}
        assert ("fever" in row["symptoms"]) == row["fever"]


# The held-out set was written from CONTRACT.md before the parser was read;
# its bars are what the parser honestly reaches there, with fever and
# emergency recall still required in full.
HOLDOUT_BARS = {
    "fever_recall": 1.0,
    "emergency_recall": 1.0,
    "fever_precision": 0.97,
    "checkin_accuracy": 0.98,
    "request_accuracy": 0.98,
    "temperature_accuracy": 0.98,
    "all_fields_right": 0.97,
}


def test_holdout_set_meets_its_bars() -> None:
    metrics, wrong = score(_load("nlp_holdout.jsonl"))
    failed = {k: round(v, 3) for k, v in metrics.items() if v < HOLDOUT_BARS[k]}
    assert not failed, f"{failed}\n" + "\n".join(wrong[:30])


def test_holdout_set_is_big_new_and_consistent() -> None:
    seen = {r["text"] for r in _load("nlp_dev.jsonl")} | {r["text"] for r in _load("nlp_extra.jsonl")}
    holdout = _load("nlp_holdout.jsonl")
    assert len(holdout) >= 200
    assert not seen & {r["text"] for r in holdout}
    for row in holdout:
        assert set(row) >= {"text", *FIELDS}
        assert ("fever" in row["symptoms"]) == row["fever"]


# The fresh set was written blind from CONTRACT.md (407 messages; first run:
# fever recall 0.992, emergency recall 0.941, all fields right 0.907).  Its copy
# here differs from the writer's file only in these labels, where the writer's
# label contradicts the contract's "null: … news or rumours about other people"
# for a stranger or a neighbour the sender does not report for (the repo's
# dev set labels the same kind of message null: "楼道里有个人倒在地上了，快叫120",
# "隔壁大爷好像不行了，敲门也不应").
FRESH_CORRECTIONS = {
    "隔壁大爷倒在门口没反应了，谁懂急救？我已经打120了": ("checkin", "abnormal", None),
    "3号楼有个老太太在电梯里晕倒了，现在醒了但说胸口疼": ("checkin", "abnormal", None),
    "网格员快来！我们楼道里有个人躺着一动不动，叫不醒": ("checkin", "abnormal", None),
}

FRESH_BARS = {
    "fever_recall": 1.0,
    "emergency_recall": 1.0,
    "fever_precision": 0.98,
    "checkin_accuracy": 0.98,
    "request_accuracy": 0.98,
    "temperature_accuracy": 0.98,
    "all_fields_right": 0.97,
}


def test_fresh_set_meets_its_bars() -> None:
    metrics, wrong = score(_load("nlp_fresh_a.jsonl"))
    failed = {k: round(v, 3) for k, v in metrics.items() if v < FRESH_BARS[k]}
    assert not failed, f"{failed}\n" + "\n".join(wrong[:30])


def test_fresh_set_is_consistent_and_its_corrections_are_listed() -> None:
    rows = _load("nlp_fresh_a.jsonl")
    assert len(rows) >= 400
    by_text = {r["text"]: r for r in rows}
    for text, (field, was, now) in FRESH_CORRECTIONS.items():
        assert by_text[text][field] == now != was
    for row in rows:
        assert set(row) >= {"text", *FIELDS}
        assert ("fever" in row["symptoms"]) == row["fever"]


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("nlp_*.jsonl")))
def test_no_fever_or_emergency_missed(name: str) -> None:
    metrics, wrong = score(_load(name))
    missed = [w for w in wrong if "fever want True" in w or "emergency want True" in w]
    assert metrics["fever_recall"] == 1.0 and metrics["emergency_recall"] == 1.0, "\n".join(missed)
