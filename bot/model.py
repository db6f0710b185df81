"""The platform-neutral message model. No wechatpy or aiohttp type passes an adapter."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Inbound:
    """One message that reached the bot, on any channel.

    `chat_id` is the group chat's id, or None for a private chat with the bot.
    `kind` is "text" for text; anything else (image, voice, event...) is stored and acknowledged.
    `reply_to` carries a channel's own reply handle (the AI bot's response_url).
    """

    channel: str
    msg_id: str
    sender_id: str
    text: str
    sent_at: datetime
    chat_id: str | None = None
    sender_name: str | None = None
    chat_name: str | None = None
    kind: str = "text"
    reply_to: str | None = None

    @property
    def is_group(self) -> bool:
        return self.chat_id is not None


@dataclass(frozen=True)
class Outbound:
    """One message to send: to a user privately (`to_user`) or to a group (`to_chat`).

    `dedup_key`, when set, makes the send happen at most once across retries, restarts and
    processes (it is a unique column of the outbox).
    """

    channel: str
    text: str
    to_user: str | None = None
    to_chat: str | None = None
    kind: str = "reply"
    dedup_key: str | None = None
    reply_to: str | None = None
    notice_id: int | None = None  # the staff notice (通知) this group message carries

    def __post_init__(self) -> None:
        if (self.to_user is None) == (self.to_chat is None):
            raise ValueError("an Outbound goes to exactly one of to_user or to_chat")


@dataclass(frozen=True)
class TimerEvent:
    """A scheduled job firing: it enters the same pipeline as a chat message."""

    job: str
    at: datetime
    # What an operator asked for by hand (`gridbot jobs run quarantine-reminders --slot am --date D`):
    # the handlers that understand an option read it, the others ignore it.
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
