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
