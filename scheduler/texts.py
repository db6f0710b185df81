"""What the scheduled jobs say. Short lines for phones; health details only ever go privately."""

from __future__ import annotations

DAILY_PROMPT = "早上好！请各户回复今日健康情况：如 3-2-501 36.5 正常。有事报情况，无事报平安。"

SLOT_LABELS = {"am": "上午", "pm": "下午"}


def slot_label(slot: str) -> str:
    return SLOT_LABELS.get(slot, "")


def progress(reported: int, due: int) -> str:
    # A group line: counts only, never a name, a room or a health detail.
    return f"今日打卡进度：{reported}/{due} 户"


def quarantine_reminder(name: str, day: int, days: int, slot: str) -> str:
    return (
        f"{name}，您好！今天是居家隔离第{day}天，共{days}天。"
        f"请测量{slot_label(slot)}体温并回复，如 36.5；有咳嗽、乏力等不适请一并说明。"
        "需要买菜、买药或收垃圾，直接回复告诉我们。"
    )


def quarantine_followup(name: str, day: int, days: int, slot: str) -> str:
    return (
        f"{name}，您好！还没有收到您居家隔离第{day}天（共{days}天）{slot_label(slot)}的体温，"
        "请回复体温，如 36.5。有事报情况，无事报平安。"
    )


def missed_summary(slot: str, due_hhmm: str, again_hhmm: str | None) -> str:
    # The alert around it already names the household, the person and the quarantine day.
    asked = f"{due_hhmm} 提醒" + (f"、{again_hhmm} 再次提醒" if again_hhmm else "")
    return f"{slot_label(slot)}体温未报：{asked}{'均' if again_hhmm else '后'}无回复，请电话或上门核实。"


def household_nudge(label: str) -> str:
    return f"您好，今天还没有收到 {label} 的健康打卡。有事报情况，无事报平安，请回复如：{label} 36.5 正常。"


def quarantine_end(label: str, name: str, days: int) -> str:
    return f"居家隔离期满：{label} {name}，第{days}天已结束，回复 解除 {label}"
