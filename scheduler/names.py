"""The scheduled jobs by name, with what each does: light to import (the command line's help)."""

from __future__ import annotations

JOBS: dict[str, str] = {
    "daily-prompt": "the morning prompt in every building group (GRIDBOT_DAILY_PROMPT_AT)",
    "progress": "today's check-in count in every building group (GRIDBOT_PROGRESS_AT)",
    "quarantine-reminders": "private reminders to people in home quarantine (GRIDBOT_QUARANTINE_REMINDERS)",
    "follow-up": "repeat unanswered reminders; report a missed one to the grid worker (every 5 minutes)",
    "escalation-sweep": "move unacknowledged escalations up the chain (every minute)",
    "ledger": "the daily ledger to each grid worker (GRIDBOT_LEDGER_AT)",
    "quarantine-ends": "ask the grid worker to release people whose quarantine has ended (09:00)",
    "retention": "purge the health details of people released GRIDBOT_RETENTION_DAYS ago, and old message texts (03:30)",
}
JOB_NAMES: tuple[str, ...] = tuple(JOBS)
