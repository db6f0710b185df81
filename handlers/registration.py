"""Registration: an unknown sender binds themselves to a household of the roster ("3-2-501 王芳").

- Only households that exist bind. In a building group the building must be that group's; in
  private any building with that number. When the address fits several households (that number in
  two communities, or in two compounds of one community) the sender gets a short numbered list and
  the registration waits in the state store (per channel and sender, `PENDING_TTL_S`): the next
  message that names an option ("阳光社区", "东苑9号楼") or its number ("1") completes it; a new
  address starts over; anything else gets the list again.
- A roster resident of that household with the same name and no chat id yet is bound instead of
  creating a new one; the grid worker hears of each new binding.
- The first message is not lost: a check-in, request or emergency in the binding message is handled
  right after the binding, and a fever the sender reported earlier (before they gave an address) is
  recorded then as well.
- An unknown sender without an address gets the question privately; chatter in a group is answered
  at most once a day, and not at all when the sender was asked already.
  A fever or emergency from them in a building group goes to that building's grid worker at once
  (an emergency to the whole chain) as "未登记居民": a fever must never be lost.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import re
import unicodedata
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.dispatch import NOT_HANDLED, Context, Router, UserError
from bot.model import Inbound, Outbound
from handlers import people, texts
from handlers.common import (
    audit,
    compact,
    find_address_in,
    group_message,
    health_summary,
    local_date,
    normalize_command,
    private_channel,
    staff_command,
    to_person,
    to_sender,
)
from handlers.escalation import alert_text, notify_alert, open_escalation, recipients
from nlp import parse
from nlp.subjects import Subject
from storage.models import Building, Escalation, Household, InboundMessage, PendingBinding, Resident, Staff
from storage.queries import households_at, split_label

log = logging.getLogger(__name__)
router = Router("registration")
commands = Router("registration-commands")
# Addresses a sender may claim in a day before a person has to help.
CLAIMS_PER_DAY = 5
# Wrong phone digits before only the worker can confirm a claim.
PROOF_ATTEMPTS = 3

_NAME_CUE = re.compile(r"(?:我是|我叫|姓名|名字)\s*[:：]?\s*([\u4e00-\u9fff·]{2,5})")
_ADDRESS_BITS = re.compile(r"[\d\-－—.．]+|号楼|栋|幢|单元|号院|院|室|号|楼|户")
_NOT_NAMES = {"正常", "平安", "都好", "全家", "报平安", "你好", "您好", "登记", "住址", "地址", "在吗", "谢谢",
              "好的", "是的", "对的", "对", "那个", "这个", "社区", "我住"}
# How far back a fever reported before registering is still picked up when the sender binds.
LOOK_BACK = timedelta(hours=24)
# How long a registration waiting for "which one?" is kept.
PENDING_TTL_S = 30 * 60
# How long "this sender was asked for their address" keeps group chatter from asking again.
ASKED_TTL_S = 24 * 3600
# "1", "选2", "第1个", "1." — an answer by number to the numbered list.
_CHOICE_NO = re.compile(r"(?:选|第)?\s*([1-9])\s*(?:个|号|项)?\s*[.。、!！]?")


def _is_unknown(ctx: Context) -> bool:
    return ctx.resident is None and ctx.staff is None


def extract_name(text: str, has_report: bool) -> str | None:
    """The sender's name in a registration message, when it is plainly there."""
    m = _NAME_CUE.search(text)
    if m:
        return m.group(1)
    if has_report:
        return None  # "3-2-501 36.5 正常": the rest is the report, not a name
    rest = _ADDRESS_BITS.sub(" ", text)
    rest = re.sub(r"[\s,，。.!！:：;；、~～]+", " ", rest).strip()
    if re.fullmatch(r"[\u4e00-\u9fff·]{2,5}", rest) and rest not in _NOT_NAMES:
        return rest
    return None


async def _escalate_unregistered(ctx: Context, building: Building | None) -> list[Outbound]:
    """A fever, symptom or emergency from someone the roster does not know is an escalation like any
    other — its E-code, the chain and its deadlines, acknowledged and closed by the worker — on the
    building whose group it came from (or a candidate building of the address they gave), or, from a
    private chat with no address, on nothing yet: then the street duty officers hear it. When the
    sender registers it moves to their household (`_attach_unregistered`)."""
    p = ctx.parsed
    kind = "emergency" if p.emergency else "fever" if p.fever else "symptom"
    opened = await open_escalation(
        ctx.session, ctx.settings, ctx.now, kind=kind, household=None, resident=None, building=building,
        sender=ctx.inbound, text=ctx.text,
        summary=health_summary(p.temperature, p.symptoms or [], bool(p.fever), ctx.text if p.emergency else None),
        temperature=p.temperature, inbound_id=ctx.inbound_id)
    log.warning("unregistered %s in building %s: escalation %s", kind, building.id if building else None,
                opened.escalation.code)
    return opened.messages


async def _attach_unregistered(ctx: Context, household: Household, resident: Resident | None,
                               name: str) -> list[Outbound]:
    """The sender's open escalations move to the household they name: at the claim already (its grid
    worker must hear a fever now, whether or not the claim holds), and to the person once the claim
    is confirmed. The household's worker hears it if they had not, the others learn the address; an
    escalation on a candidate building that turned out not to be theirs is closed. Never a second
    escalation: the moved one takes the household's (then the person's) key, so a replayed or later
    report updates it."""
    s = ctx.session
    rows = (await s.scalars(select(Escalation).where(
        Escalation.sender_channel == ctx.inbound.channel, Escalation.sender_id == ctx.inbound.sender_id,
        Escalation.status != "closed").order_by(Escalation.id))).unique().all()
    out: list[Outbound] = []
    for esc in rows:
        if esc.household_id is not None and esc.household_id != household.id:
            continue
        if esc.household_id is None and esc.building_id not in (None, household.building_id):
            esc.status, esc.closed_at, esc.deadline_at = "closed", ctx.now, None
            esc.note = texts.REG_ESC_ELSEWHERE.format(label=household.label)
            continue
        day = local_date(ctx.settings, esc.opened_at).isoformat()
        key = f"{esc.kind}:{'r' + str(resident.id) if resident else 'h' + str(household.id)}:{day}"
        if await s.scalar(select(Escalation.id).where(Escalation.dedup_key == key)) is None:
            esc.dedup_key = key
        if resident is not None:
            esc.resident_id = esc.reporter_id = resident.id
        if esc.household_id == household.id:
            continue  # reported while the claim waited: its worker has it already
        before = {st.id for st in await recipients(s, ctx.settings, esc, esc.level)}
        esc.household_id, esc.household = household.id, household
        esc.building_id, esc.building = household.building_id, household.building
        esc.grid_id = household.building.grid_id
        await s.flush()
        now_told = await recipients(s, ctx.settings, esc, esc.level, resident)
        new = [st for st in now_told if st.id not in before]
        if new:
            body = await alert_text(s, ctx.settings, esc, header=texts.REG_ESC_MOVED_HEADER)
            out += await notify_alert(s, esc, new, body, f"esc:{esc.id}:placed")
        out += compact(to_person(st, texts.REG_ESC_MOVED.format(code=esc.code, label=household.label, name=name),
                                 kind="escalation", dedup_key=f"esc:{esc.id}:placed:s{st.id}")
                       for st in now_told if st.id in before)
        log.info("escalation %s moved to household %s (%s)", esc.code, household.id,
                 "bound" if resident else "claimed")
    return out


async def _waiting(ctx: Context, claim: PendingBinding) -> list[Outbound]:
    """Chatter while the claim waits: said once a day, never in the group."""
    day = local_date(ctx.settings, ctx.now).isoformat()
    return [dataclasses.replace(to_sender(ctx, texts.REG_CLAIM_WAITING.format(label=claim.household.label)),
                                dedup_key=f"claim-wait:{claim.id}:{day}")]


# --- the worker confirms: 确认 P12 | 确认 3-2-501 钱五 ----------------------------------------------------


@commands.message(staff_command("确认"))
async def on_confirm(ctx: Context) -> list[Outbound]:
    args = ctx.data["args"]
    scope = await people.scope_of(ctx.session, ctx.staff)
    m = re.match(r"^[Pp]\s*(\d+)$", args)
    if m:
        claims = [c for c in [await ctx.session.get(PendingBinding, int(m.group(1)))] if c is not None]
    else:
        address = find_address_in(args)
        if not address:
            raise UserError(texts.CONFIRM_USAGE)
        name = extract_name(args, False)
        homes = [h.id for h in await households_at(ctx.session, address, grid_ids=scope.grid_ids)]
        q = select(PendingBinding).where(PendingBinding.household_id.in_(homes), PendingBinding.status == "pending")
        if name:
            q = q.where(PendingBinding.name == name)
        claims = list((await ctx.session.scalars(q.order_by(PendingBinding.id))).unique().all())
    claims = [c for c in claims if c.status == "pending" and scope.allows(c.household.building.grid_id)]
    if not claims:
        raise UserError(texts.CONFIRM_NONE)
    if len(claims) > 1:
        raise UserError(texts.CONFIRM_WHICH.format(codes="、".join(f"P{c.id}（{c.name}）" for c in claims)))
    claim = claims[0]
    audit(ctx.session, ctx.now, ctx.staff, "binding.confirm", claim.household.label, claim=claim.id)
    out = await make_binding(ctx, claim, by=ctx.staff)
    return [ctx.reply(texts.CONFIRM_OK.format(label=claim.household.label, name=claim.name)), *out]


# --- conversation state: a registration waiting for "which one?" ---------------------------------


def _pending_key(ctx: Context) -> str:
    return f"reg:pending:{ctx.inbound.channel}:{ctx.inbound.sender_id}"


def _asked_key(ctx: Context) -> str:
    return f"reg:asked:{ctx.inbound.channel}:{ctx.inbound.sender_id}"


async def _load_pending(ctx: Context) -> dict | None:
    if ctx.state is None:
        return None
    raw = await ctx.state.get(_pending_key(ctx))
    if not raw:
        return None
    try:
        pending = json.loads(raw)
    except ValueError:
        return None
    return pending if isinstance(pending, dict) and pending.get("options") else None


async def _save_pending(ctx: Context, pending: dict) -> None:
    if ctx.state is not None:
        await ctx.state.set(_pending_key(ctx), json.dumps(pending, ensure_ascii=False), ttl=PENDING_TTL_S)


async def _drop_pending(ctx: Context) -> None:
    if ctx.state is not None:
        await ctx.state.delete(_pending_key(ctx))


def _aliases(community: str) -> list[str]:
    short = community.removesuffix("社区")
    return [community, short] if short != community and len(short) >= 2 else [community]


def _options(found: list[Household]) -> list[dict]:
    """One option per candidate household, labelled by what tells it apart from the others: the
    community, the building's full name (two "3号楼" in one community), the unit and room."""
    opts = []
    for h in found:
        b, c = h.building, h.building.grid.community
        same_c = [o for o in found if o.building.grid.community_id == c.id]
        keys: list[list[str]] = []
        if len(same_c) < len(found):
            keys.append(_aliases(c.name))
        if any(o.building_id != b.id for o in same_c):
            keys.append([b.name])
        if any(o.building_id == b.id and o.id != h.id for o in found):
            keys.append([h.label])
        label = " ".join(k[0] for k in keys)
        opts.append({"id": h.id, "label": label, "keys": keys})
    return opts


def _choose(text: str, options: list[dict]) -> int | None:
    """The index of the option the answer names, by number or by name; None when it names none or
    several."""
    t = normalize_command(text)
    m = _CHOICE_NO.fullmatch(t)
    if m:
        i = int(m.group(1)) - 1
        return i if i < len(options) else None
    scores = []
    for i, o in enumerate(options):
        got = [max((len(a) for a in alts if a in t), default=0) for alts in o["keys"]]
        if o["keys"] and all(got):
            scores.append((sum(got), i))  # "阳光花园3号楼" also contains "3号楼": the longer wins
    if not scores:
        return None
    scores.sort(reverse=True)
    if len(scores) > 1 and scores[0][0] == scores[1][0]:
        return None
    return scores[0][1]


def _choices_text(pending: dict) -> str:
    lines = "\n".join(texts.REG_CHOOSE_OPTION.format(i=i, label=o["label"])
                      for i, o in enumerate(pending["options"], 1))
    return texts.REG_CHOOSE.format(address=pending["address"], n=len(pending["options"]), options=lines)


def _has_report(ctx: Context) -> bool:
    p = ctx.parsed
    return bool(p and (p.checkin or p.emergency or p.fever or p.request))


def _is_health(parsed: object) -> bool:
    return bool(parsed and (parsed.emergency or parsed.fever or parsed.checkin == "abnormal"))  # type: ignore[attr-defined]


# --- asking -------------------------------------------------------------------------------------------


async def _ask(ctx: Context, pending: dict | None = None) -> list[Outbound]:
    """No address in the message: alert for a fever or emergency, and ask (the address, or which of
    the pending options)."""
    p = ctx.parsed
    emergency = bool(p and p.emergency)
    fever = bool(p and (p.fever or p.checkin == "abnormal"))
    out: list[Outbound | None] = []
    question = [to_sender(ctx, _choices_text(pending))] if pending else []
    if ctx.inbound.is_group and ctx.building is not None and (emergency or fever):
        out += await _escalate_unregistered(ctx, ctx.building)
        out.append(to_sender(ctx, texts.REG_EMERGENCY if emergency else texts.REG_FEVER))
        out.append(group_message(ctx.building, texts.GROUP_ABNORMAL, channel=ctx.inbound.channel,
                                 chat_id=ctx.inbound.chat_id, reply_to=ctx.inbound.reply_to))
        return compact(out + question)
    if pending and (emergency or fever):
        # The address fits several households: the grid workers of each candidate building hear of
        # it now rather than after the resident picks one (they may never answer).
        for b in await _pending_buildings(ctx, pending):
            out += await _escalate_unregistered(ctx, b)
        out.append(to_sender(ctx, texts.REG_EMERGENCY if emergency else texts.REG_FEVER_CANDIDATES))
        return compact(out + question)
    if emergency or fever:
        # no building to go by: the street duty officers are the last line, and the sender is asked
        # for the address at once
        out += await _escalate_unregistered(ctx, None)
        await _mark_asked(ctx)
        out.append(to_sender(ctx, texts.REG_EMERGENCY_NO_ADDRESS if emergency else texts.REG_FEVER_NO_ADDRESS))
        return compact(out + question)
    if ctx.inbound.is_group:
        # chatter from an unknown member: ask privately, once (a day at most), never flood the group
        if ctx.state is not None and await ctx.state.get(_asked_key(ctx)):
            return []
        day = local_date(ctx.settings, ctx.now).isoformat()
        if pending:
            ask = to_sender(ctx, _choices_text(pending))
            key = f"reg-choose:{ctx.inbound.channel}:{ctx.inbound.sender_id}:{pending.get('since', day)}"
        else:
            ask = to_sender(ctx, texts.REG_ASK)
            key = f"reg-ask:{ctx.inbound.channel}:{ctx.inbound.sender_id}:{day}"
        await _mark_asked(ctx)
        return [dataclasses.replace(ask, dedup_key=key)]
    if pending:
        return compact(question)
    await _mark_asked(ctx)
    return [to_sender(ctx, texts.REG_ASK)]


async def _pending_buildings(ctx: Context, pending: dict) -> list[Building]:
    buildings: dict[int, Building] = {}
    for o in pending["options"]:
        h = await ctx.session.get(Household, o["id"])
        if h is not None:
            buildings.setdefault(h.building_id, h.building)
    return list(buildings.values())


async def _mark_asked(ctx: Context) -> None:
    if ctx.state is not None:
        await ctx.state.set(_asked_key(ctx), "1", ttl=ASKED_TTL_S)


async def _candidates(ctx: Context, address: str) -> tuple[list[Household], str | None]:
    """Households the address may mean (several when it is ambiguous), or a reply explaining why none."""
    parts = split_label(address)
    if parts is None:
        return [], texts.REG_ASK
    b = parts[0]
    if ctx.inbound.is_group and ctx.building is not None:
        if b and b != ctx.building.number:
            return [], texts.REG_WRONG_BUILDING.format(building=ctx.building.name, address=address)
        found = await households_at(ctx.session, address, building=ctx.building)
    else:
        if not b:
            return [], texts.REG_ASK
        found = await households_at(ctx.session, address)
    if not found:
        return [], texts.REG_NOT_FOUND.format(address=address.strip("-"))
    if len(found) > 1:
        # "幸福社区 3-2-501 张三": the message may name its option already
        i = _choose(ctx.text, _options(found))
        if i is not None:
            found = [found[i]]
    return found, None


def _is_proof(text: str) -> str | None:
    m = re.fullmatch(r"\s*(\d{4})\s*", unicodedata.normalize("NFKC", text or ""))
    return m.group(1) if m else None


async def open_claim(session: AsyncSession, channel: str, sender_id: str) -> PendingBinding | None:
    return await session.scalar(select(PendingBinding).where(
        PendingBinding.channel == channel, PendingBinding.sender_id == sender_id,
        PendingBinding.status == "pending").order_by(PendingBinding.id.desc()).limit(1))


async def _claim(ctx: Context, household: Household, name: str) -> tuple[PendingBinding | None, list[Outbound]]:
    """"3-2-501 钱五" from someone the roster does not know: a claim, not a binding. The reply is
    the same whoever lives there (it never confirms who does); the grid worker is asked to confirm,
    and a claimant who is the roster's 钱五 can prove it with the last four digits of that phone."""
    s, ib = ctx.session, ctx.inbound
    if ctx.state is not None and await ctx.state.acquire(
            [(f"reg:claims:{ib.channel}:{ib.sender_id}", CLAIMS_PER_DAY - 1, 86400, 0)]) > 0:
        return None, [to_sender(ctx, texts.REG_TOO_MANY)]
    if ctx.state is not None:
        await ctx.state.acquire([(f"reg:claims:{ib.channel}:{ib.sender_id}", 1_000_000, 86400, 1)])
    old = await open_claim(s, ib.channel, ib.sender_id)
    if old is not None:  # one claim at a time: a new address replaces the last one
        old.status, old.decided_at = "replaced", ctx.now
    roster = await s.scalar(select(Resident).where(Resident.household_id == household.id, Resident.name == name,
                                                   Resident.channel_user_id.is_(None)))
    claim = PendingBinding(channel=ib.channel, sender_id=ib.sender_id, sender_name=(ib.sender_name or "")[:100] or None,
                           household_id=household.id, household=household, name=name[:60],
                           resident_id=roster.id if roster is not None else None, created_at=ctx.now)
    s.add(claim)
    await s.flush()
    log.info("claim P%s: sender on %s claims household %s", claim.id, ib.channel, household.id)
    note = texts.REG_CLAIM_TO_WORKER.format(code=f"P{claim.id}", label=household.label, name=name,
                                            who=ib.sender_name or "", channel=ib.channel, id=ib.sender_id)
    out: list[Outbound | None] = [to_sender(ctx, texts.REG_CLAIMED.format(label=household.label, name=name))]
    out += [to_person(w, note, kind="registration", dedup_key=f"claim:{claim.id}:s{w.id}")
            for w in await people.grid_workers(s, household.building.grid_id)]
    out += await _attach_unregistered(ctx, household, None, name)
    return claim, compact(out)


async def _prove(ctx: Context, claim: PendingBinding, digits: str) -> list[Outbound]:
    """The last four digits of the claimed roster resident's phone make the claim a binding; anything
    else counts as a failed attempt, and after `PROOF_ATTEMPTS` only the worker can confirm."""
    roster = await ctx.session.get(Resident, claim.resident_id) if claim.resident_id else None
    phone = re.sub(r"\D", "", (roster.phone or "") if roster else "")
    if claim.attempts < PROOF_ATTEMPTS and len(phone) >= 4 and hmac.compare_digest(phone[-4:], digits):
        return await make_binding(ctx, claim, by=None)
    claim.attempts += 1
    log.info("claim P%s: proof refused (attempt %s)", claim.id, claim.attempts)
    return [to_sender(ctx, texts.REG_PROOF_REFUSED)]


async def make_binding(ctx: Context, claim: PendingBinding, by: Staff | None) -> list[Outbound]:
    """Makes a claim real: the roster resident of that name gets the sender's chat id (or a new
    resident is added), the sender's open escalations move to them, and both sides are told."""
    s = ctx.session
    household = claim.household
    resident = await s.get(Resident, claim.resident_id) if claim.resident_id else None
    if resident is None or resident.channel_user_id:
        resident = await s.scalar(select(Resident).where(Resident.household_id == household.id,
                                                         Resident.name == claim.name, Resident.channel_user_id.is_(None)))
    try:
        async with s.begin_nested():
            if resident is None:
                resident = Resident(household_id=household.id, household=household, name=claim.name, category="常住")
                s.add(resident)
            resident.channel, resident.channel_user_id, resident.bound_at = claim.channel, claim.sender_id, ctx.now
    except IntegrityError:
        # the sender is bound already (two confirmations at once): nothing more to do
        claim.status, claim.decided_at = "bound", ctx.now
        return []
    claim.status, claim.decided_at, claim.decided_by = "bound", ctx.now, by.id if by else None
    log.info("claim P%s bound: household %s resident %s (%s)", claim.id, household.id, resident.id,
             "confirmed by staff" if by else "phone proof")
    sender = Inbound(channel=claim.channel, msg_id=f"claim-{claim.id}", sender_id=claim.sender_id, text="",
                     sent_at=ctx.now, sender_name=claim.sender_name)
    out: list[Outbound | None] = [Outbound(channel=private_channel(claim.channel), to_user=claim.sender_id,
                                           text=texts.REG_DONE.format(label=household.label, name=claim.name))]
    out += await _attach_unregistered(dataclasses.replace(ctx, inbound=sender), household, resident, claim.name)
    note = texts.REG_TO_WORKER.format(label=household.label, name=claim.name, channel=claim.channel)
    out += [to_person(w, note, kind="registration") for w in await people.grid_workers(s, household.building.grid_id)
            if by is None or w.id != by.id]
    return compact(out)


async def _replay(ctx: Context, row: InboundMessage, parsed: object) -> list[Outbound]:
    """An earlier message of this sender (sent before they were bound), handled now as theirs,
    through the dispatcher like any message of a known resident."""
    if getattr(parsed, "address", None):
        # an address in a message sent before binding was a registration attempt (maybe the wrong
        # one), not a neighbour's: the report is about the household just bound
        parsed = _own_report(parsed)
    earlier = Inbound(channel=row.channel, msg_id=row.msg_id, sender_id=row.sender_id, text=row.text,
                      sent_at=row.sent_at, chat_id=row.chat_id, sender_name=row.sender_name,
                      kind=row.kind, reply_to=None)
    sub = dataclasses.replace(ctx, inbound=earlier, inbound_id=row.id, parsed=parsed,
                              building=ctx.building if row.chat_id == ctx.inbound.chat_id else None)
    if parsed.checkin is not None or parsed.emergency or parsed.fever or parsed.request:  # type: ignore[attr-defined]
        return await ctx.dispatch(sub)
    return []


def _own_report(parsed: Any) -> Any:
    """The report in a message that carried the sender's own address and name: it is about the
    sender ("3-2-501 周七 发烧38.4" — 周七 is who registers, not a neighbour)."""
    me = Subject(who="self", temperature=parsed.temperature, fever=parsed.fever, symptoms=tuple(parsed.symptoms))
    return dataclasses.replace(parsed, address=None, concerns="self", persons=(), subjects=(me,))


async def _earlier_health_report(ctx: Context, skip: set[int] = frozenset()) -> list[Outbound]:  # type: ignore[assignment]
    """A fever or symptom this sender reported before they were registered: record it now."""
    skip = set(skip) | ({ctx.inbound_id} if ctx.inbound_id else set())
    rows = (await ctx.session.scalars(
        select(InboundMessage).where(
            InboundMessage.channel == ctx.inbound.channel, InboundMessage.sender_id == ctx.inbound.sender_id,
            InboundMessage.received_at >= ctx.now - LOOK_BACK,
            *([InboundMessage.id.not_in(skip)] if skip else []))
        .order_by(InboundMessage.id.desc()).limit(20))).all()
    for row in rows:
        parsed = parse(row.text, fever_at=ctx.settings.fever_at)
        if _is_health(parsed):
            return await _replay(ctx, row, parsed)
    return []


async def _stored_report(ctx: Context, pending: dict) -> list[Outbound]:
    """After a two-step binding: the report sent while the registration waited (the first message
    is not lost), and a fever sent before it, each once."""
    report_id = pending.get("report_id")
    out: list[Outbound] = []
    health = False
    if report_id:
        row = await ctx.session.get(InboundMessage, report_id)
        if row is not None and row.sender_id == ctx.inbound.sender_id and row.channel == ctx.inbound.channel:
            parsed = parse(row.text, fever_at=ctx.settings.fever_at)
            health = _is_health(parsed)
            out += await _replay(ctx, row, parsed)
    if not health:
        out += await _earlier_health_report(ctx, skip={report_id} if report_id else set())
    return out


# --- the handler -----------------------------------------------------------------------------------


def _name_in_answer(text: str, options: list[dict]) -> str | None:
    """"阳光社区 李明" → 李明 (the option's own words are not a name)."""
    rest = normalize_command(text)
    for o in options:
        for alts in o["keys"]:
            for a in sorted(alts, key=len, reverse=True):
                rest = rest.replace(a, " ")
    rest = re.sub(r"[1-9]|选|第|个|项", " ", rest)
    return extract_name(rest, False)


async def _complete(ctx: Context, pending: dict, choice: int) -> list[Outbound]:
    await _drop_pending(ctx)
    household = await ctx.session.get(Household, pending["options"][choice]["id"])
    if household is None:  # the roster changed meanwhile
        return [to_sender(ctx, texts.REG_ASK)]
    name = (_name_in_answer(ctx.text, pending["options"]) or pending.get("name")
            or (ctx.inbound.sender_name or "").strip()[:60] or "居民")
    claim, out = await _claim(ctx, household, name)
    if claim is None:
        return out
    ctx.claim, ctx.household = claim, household
    return out + await _stored_report(ctx, pending)


@router.message(_is_unknown)
async def on_unknown_sender(ctx: Context) -> list[Outbound]:
    p = ctx.parsed
    if ctx.claim is not None:
        return NOT_HANDLED  # a report of a claimant, handed on (below): handlers.checkin records it
    address = (getattr(p, "address", None) if p else None) or find_address_in(ctx.text)
    claim = await open_claim(ctx.session, ctx.inbound.channel, ctx.inbound.sender_id)
    if claim is not None and not address:
        digits = _is_proof(ctx.text)
        if digits is not None:
            return await _prove(ctx, claim, digits)
        if _has_report(ctx):
            # counted for the household as unverified; never the claimed person's own report
            ctx.claim, ctx.household = claim, claim.household
            return NOT_HANDLED
        return await _waiting(ctx, claim)
    pending = await _load_pending(ctx)
    if not address:
        if pending:
            choice = _choose(ctx.text, pending["options"])
            if choice is not None:
                return await _complete(ctx, pending, choice)
            if _has_report(ctx) and (_is_health(p) or not pending.get("report_health")):
                # keep the report for after the binding (a fever is never replaced by a plain check-in)
                pending["report_id"], pending["report_health"] = ctx.inbound_id, _is_health(p)
                await _save_pending(ctx, pending)
        return await _ask(ctx, pending)
    # a new address: (re)start the registration, keeping a report that waited
    earlier = pending or {}
    found, problem = await _candidates(ctx, address)
    has_report = bool(p and (p.checkin or p.emergency or p.request))
    if problem:
        if pending:
            await _drop_pending(ctx)
        out = [to_sender(ctx, problem)]
        if _is_health(p):
            out += await _escalate_unregistered(ctx, ctx.building)
        return out
    name = extract_name(ctx.text, has_report)
    if len(found) > 1:
        new = {"address": address.strip("-"), "options": _options(found), "name": name,
               "since": ctx.inbound_id or ctx.inbound.msg_id,
               "report_id": earlier.get("report_id"), "report_health": earlier.get("report_health", False)}
        if _has_report(ctx) and (_is_health(p) or not new["report_health"]):
            new["report_id"], new["report_health"] = ctx.inbound_id, _is_health(p)
        await _save_pending(ctx, new)
        out = [to_sender(ctx, _choices_text(new))]
        if _is_health(p):
            if ctx.inbound.is_group and ctx.building is not None:
                out += await _escalate_unregistered(ctx, ctx.building)
            else:
                for b in {h.building_id: h.building for h in found}.values():
                    out += await _escalate_unregistered(ctx, b)
        return out
    if pending:
        await _drop_pending(ctx)
    household = found[0]
    name = name or (ctx.inbound.sender_name or "").strip()[:60] or "居民"
    claim, out = await _claim(ctx, household, name)
    if claim is None:
        return out
    ctx.claim, ctx.household = claim, household
    if has_report:
        ctx.parsed = _own_report(p)
        out += await ctx.dispatch(ctx)
        if pending and pending.get("report_health") and not _is_health(p):
            out += await _stored_report(ctx, pending)
    elif pending:
        out += await _stored_report(ctx, pending)
    else:
        out += await _earlier_health_report(ctx)
    return out
