"""Messages that are not words: pictures, stickers, files, voice without a transcript, and recalls.

A resident who sends a photo of the thermometer or a voice note is asked, once an hour at most and
privately, to write the temperature in words: a picture cannot be read, and silence would look like
a report that was taken. A voice message with a transcript (WeCom's `Recognition`, the gateway's
`text`) never reaches here: the pipeline parses it like typed words.

A recall (the gateway's `kind: "recall"`, the recalled msg_id as its text) undoes what the recalled
message recorded when nothing else has come of it yet; when it already alerted someone, the alert
stands and the worker is told the resident took the message back.
"""

from __future__ import annotations

import logging

from sqlalchemy import delete, select

from bot.dispatch import Context, Router
from bot.model import Outbound
from handlers import people, texts
from handlers.common import compact, to_person, to_sender
from storage.models import CheckIn, Escalation, InboundMessage, ListLine

log = logging.getLogger(__name__)
router = Router("media")

# How often one sender is asked to write instead of sending pictures.
ASK_EVERY_S = 3600
UNREADABLE = ("image", "voice", "file", "emotion", "emoticon", "sticker", "video", "mixed", "location", "link")


def _unreadable(ctx: Context) -> bool:
    return ctx.inbound.kind in UNREADABLE and not ctx.text.strip() and ctx.resident is not None


@router.message(_unreadable)
async def on_unreadable(ctx: Context) -> list[Outbound]:
    key = f"media-ask:{ctx.inbound.channel}:{ctx.inbound.sender_id}"
    if ctx.state is not None and await ctx.state.get(key):
        return []
    if ctx.state is not None:
        await ctx.state.set(key, "1", ttl=ASK_EVERY_S)
    return [to_sender(ctx, texts.MEDIA_ASK)]


def _is_recall(ctx: Context) -> bool:
    return ctx.inbound.kind == "recall" and bool(ctx.text)


@router.message(_is_recall)
async def on_recall(ctx: Context) -> list[Outbound]:
    s = ctx.session
    row = await s.scalar(select(InboundMessage).where(
        InboundMessage.channel == ctx.inbound.channel, InboundMessage.msg_id == ctx.text.strip()[:128],
        InboundMessage.sender_id == ctx.inbound.sender_id))
    if row is None:
        return []
    escalations = (await s.scalars(select(Escalation).where(Escalation.inbound_id == row.id))).unique().all()
    if escalations:
        # someone was alerted: a person decides, the bot does not quietly take it back
        out: list[Outbound | None] = []
        for esc in escalations:
            if esc.status == "closed":
                continue
            for st in await people.chain(s, esc.grid_id, esc.level):
                out.append(to_person(st, texts.RECALLED_TO_STAFF.format(code=esc.code), kind="escalation",
                                     dedup_key=f"esc:{esc.id}:recalled:s{st.id}"))
        log.info("recall of inbox row %s: %d escalation(s) stand", row.id, len(escalations))
        return compact(out)
    gone = (await s.execute(delete(CheckIn).where(CheckIn.inbound_id == row.id))).rowcount
    await s.execute(delete(ListLine).where(ListLine.inbound_id == row.id))
    log.info("recall of inbox row %s: %d check-in(s) undone", row.id, gone)
    return [to_sender(ctx, texts.RECALLED_UNDONE)] if gone else []
