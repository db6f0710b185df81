"""The long-lived objects of one gridbot process, built once and handed to whoever needs them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.clock import Clock
from bot.config import Settings
from storage.db import Database


@dataclass
class Runtime:
    settings: Settings
    db: Database
    clock: Clock
    # Filled in by bot/app.py: the state store (in-process or Redis), the dispatcher, the channel
    # adapters by name, the pipeline and the outbox sender.
    state: Any = None
    dispatcher: Any = None
    channels: dict[str, Any] = field(default_factory=dict)
    pipeline: Any = None
    sender: Any = None
    metrics: Any = None
