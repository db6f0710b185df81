"""The domain as stored: the truth the rest of gridbot reads and writes.

Every datetime is stored in UTC and read back timezone-aware (SQLite keeps no zone of its own).
Calendar dates (`date` columns) are local dates in the configured timezone.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored; use an aware one")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}


# --- where people live -------------------------------------------------------------------------


class Street(Base):
    """街道."""

    __tablename__ = "streets"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class Community(Base):
    """社区."""

    __tablename__ = "communities"
    __table_args__ = (UniqueConstraint("street_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    street_id: Mapped[int] = mapped_column(ForeignKey("streets.id"))
    street: Mapped[Street] = relationship(lazy="joined")


class Grid(Base):
    """网格: the unit a grid worker (网格员) is responsible for. Names are unique in a deployment."""

    __tablename__ = "grids"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    community: Mapped[Community] = relationship(lazy="joined")


class Building(Base):
    """楼栋, or a courtyard (平房院落); one building, one group chat.

    `name` is the roster's key (unique); `number` is the leading number of the name ("3号楼" → "3"),
    which is how residents write the building in an address ("3-2-501").
    """

    __tablename__ = "buildings"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    number: Mapped[str] = mapped_column(String(20), index=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id"), index=True)
    chat_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    channel: Mapped[str] = mapped_column(String(16), default="wecom")
    grid: Mapped[Grid] = relationship(lazy="joined")


class Household(Base):
    """户: (楼栋, 单元, 房号); `unit` is '' for courtyard houses."""

    __tablename__ = "households"
    __table_args__ = (UniqueConstraint("building_id", "unit", "room"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    building_id: Mapped[int] = mapped_column(ForeignKey("buildings.id"), index=True)
    unit: Mapped[str] = mapped_column(String(20), default="")
    room: Mapped[str] = mapped_column(String(20))
    building: Mapped[Building] = relationship(lazy="joined")

    @property
    def label(self) -> str:
        """The address as residents write it: 3-2-501, or 5-12 for a courtyard house."""
        parts = [self.building.number, self.unit, self.room] if self.unit else [self.building.number, self.room]
        return "-".join(parts)


CATEGORIES = ("常住", "外来", "居家隔离", "重点人员")


class Role:
    """The staff roles of the roster's 角色 column, defined once."""

    WORKER = "网格员"
    GRID_LEADER = "网格长"
    CADRE = "街道干部"
    POLICE = "民警"
    MEDIC = "医护"
    VOLUNTEER = "志愿者"
    DUTY = "街道值班"


ROLES = (Role.WORKER, Role.GRID_LEADER, Role.CADRE, Role.POLICE, Role.MEDIC, Role.VOLUNTEER, Role.DUTY)
# Roles whose 负责 may name a street (or the whole district); every other role reaches only its grids.
STREET_ROLES = (Role.DUTY, Role.CADRE)
CHANNELS = ("wecom", "aibot", "bridge", "console")


class Resident(Base):
    """居民. `channel_user_id` is the 微信ID on `channel` (a WeCom userid or a gateway sender id).

    For 重点人员 and 居家隔离 the 1+4 team is the grid worker of the household's grid plus the
    three staff named here (包保干部, 包保民警, 包保医护).
    """

    __tablename__ = "residents"
    __table_args__ = (
        UniqueConstraint("channel", "channel_user_id"),
        UniqueConstraint("household_id", "name"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    phone: Mapped[str | None] = mapped_column(String(32))
    channel: Mapped[str | None] = mapped_column(String(16))
    channel_user_id: Mapped[str | None] = mapped_column(String(128))
    category: Mapped[str] = mapped_column(String(8), default="常住")
    cadre_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    police_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    medic_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    bound_at: Mapped[datetime | None]
    household: Mapped[Household] = relationship(lazy="joined")

    @property
    def is_key_person(self) -> bool:
        return self.category == "重点人员"


class Staff(Base):
    """工作人员: 网格员, 网格长, 街道干部, 民警, 医护, 志愿者, 街道值班."""

    __tablename__ = "staff"
    __table_args__ = (UniqueConstraint("channel", "channel_user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    role: Mapped[str] = mapped_column(String(8), index=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16), default="wecom")
    channel_user_id: Mapped[str] = mapped_column(String(128))
    password_hash: Mapped[str | None] = mapped_column(String(256))
    # The channels to try after `channel` when an alert cannot be delivered there, in order (the
    # roster's 渠道 "wecom、bridge"): [{"channel": "bridge", "id": "wxid_..."}].
    alt_channels: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list, server_default="[]")
    # `gridbot staff disable`: no scope, no password, no alerts; kept for the records that name them.
    disabled_at: Mapped[datetime | None]
    scopes: Mapped[list[StaffScope]] = relationship(lazy="selectin", cascade="all, delete-orphan")

    @property
    def contacts(self) -> list[tuple[str, str]]:
        """(channel, id) in the order to try them: `channel` first, then `alt_channels`."""
        out = [(self.channel, self.channel_user_id)]
        for c in self.alt_channels or ():
            if c.get("channel") and c.get("id") and (c["channel"], c["id"]) not in out:
                out.append((c["channel"], c["id"]))
        return out


class StaffScope(Base):
    """负责: one grid, or one street (街道值班, 街道干部); a district-wide role has street_id and grid_id null."""

    __tablename__ = "staff_scopes"
    __table_args__ = (UniqueConstraint("staff_id", "grid_id", "street_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"), index=True)
    street_id: Mapped[int | None] = mapped_column(ForeignKey("streets.id"), index=True)


class Quarantine(Base):
    """居家隔离: day 1 is `start`; the period ends after day `days`."""

    __tablename__ = "quarantines"
    __table_args__ = (Index("ix_quarantines_active", "released_at", "start"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    start: Mapped[date] = mapped_column(Date)
    days: Mapped[int] = mapped_column(Integer, default=14)
    released_at: Mapped[datetime | None]
    released_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    end_prompted_at: Mapped[datetime | None]
    resident: Mapped[Resident] = relationship(lazy="joined")

    def day_of(self, on: date) -> int:
        return (on - self.start).days + 1


# --- what happens ------------------------------------------------------------------------------


class InboundMessage(Base):
    """The durable inbox: a message is here before its callback is answered."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        UniqueConstraint("channel", "msg_id"),
        # The workers' and the sweep's scan: pending rows, alarms first, then oldest first.
        Index("ix_inbound_messages_queue", "status", "priority", "id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    msg_id: Mapped[str] = mapped_column(String(128))
    chat_id: Mapped[str | None] = mapped_column(String(128))
    chat_name: Mapped[str | None] = mapped_column(String(200))
    sender_id: Mapped[str] = mapped_column(String(128))
    sender_name: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(32), default="text")
    text: Mapped[str] = mapped_column(Text, default="")
    reply_to: Mapped[str | None] = mapped_column(Text)  # e.g. the AI bot's response_url
    sent_at: Mapped[datetime]
    received_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | done | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    processed_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    # When a worker may (re)take the row: a lease after arrival (a worker that died mid-way leaves
    # the row pending; it is retried when the lease ends), or the backoff after a failed attempt.
    next_attempt_at: Mapped[datetime | None]
    # 0: a fever, symptom or emergency (read by the parser at intake), handled before 1: the rest.
    priority: Mapped[int] = mapped_column(SmallInteger, default=1, server_default="1")


class OutboundMessage(Base):
    """The outbox: written in the same transaction as the facts that caused it; a sender delivers it.

    `dedup_key` makes "send this once" a database constraint (a reminder for person, date, slot).
    """

    __tablename__ = "outbound_messages"
    __table_args__ = (
        Index("ix_outbound_messages_due", "status", "next_attempt_at"),
        # The sender's claim: pending rows by priority, then oldest first.
        Index("ix_outbound_messages_queue", "status", "priority", "id"),
        # A recipient's earlier rows still pending (sent before a later, more urgent one).
        Index("ix_outbound_messages_recipient", "to_user", "status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    to_user: Mapped[str | None] = mapped_column(String(128))
    to_chat: Mapped[str | None] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32), default="reply")
    dedup_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    reply_to: Mapped[str | None] = mapped_column(Text)
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    notice_id: Mapped[int | None] = mapped_column(ForeignKey("notices.id"))
    # An alert of this escalation (kind "escalation"): a failed one is tried on the staff member's
    # next channel; with none left it is "unreachable" and the escalation goes up at once. No
    # foreign key: the outbox is a log, and must never stop an escalation from being merged away.
    escalation_id: Mapped[int | None] = mapped_column(Integer, index=True)
    # pending | sending | sent | failed | unreachable (failed on every channel of its recipient)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    # 0 escalation, 1 reply to a person, 2 confirmation/reminder/prompt, 3 group broadcast
    # (bot/outbox.py `PRIORITY`, set by `enqueue`): the sender takes lower numbers first.
    priority: Mapped[int] = mapped_column(SmallInteger, default=1, server_default="1")


class CheckIn(Base):
    """A daily report (报平安 / 报情况) for a household or one person in it: one row a report.

    `person` is "" for the household as a whole, "r<id>" for a known resident, or the words the
    sender used for someone ("老人", "孩子"). `slot` is "day", or "am"/"pm" for people in quarantine.
    Every report is kept (a fever then "36.5 正常" is two rows: the day is abnormal, the latest reading
    is 36.5); only an explicit correction ("刚才写错了") replaces the latest row of its key.
    `source` says how it came: "self" (the household's own member), "proxy" (a neighbour, 楼长 or
    volunteer for them: `reporter_label` names who), "list" (a line of a 接龙), "staff" (a worker's
    代报: `staff_id`).
    """

    __tablename__ = "checkins"
    __table_args__ = (
        Index("ix_checkins_date_household", "date", "household_id"),
        Index("ix_checkins_key", "household_id", "person", "date", "slot"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"))
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id"))
    person: Mapped[str] = mapped_column(String(40), default="")
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id"))
    date: Mapped[date] = mapped_column(Date)
    slot: Mapped[str] = mapped_column(String(4), default="day")
    status: Mapped[str] = mapped_column(String(10))  # safe | abnormal
    temperature: Mapped[float | None] = mapped_column(Float)
    fever: Mapped[bool] = mapped_column(Boolean, default=False)
    symptoms: Mapped[list[str]] = mapped_column(default=list)
    text: Mapped[str] = mapped_column(Text, default="")
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    source: Mapped[str] = mapped_column(String(8), default="self", server_default="self")
    reporter_label: Mapped[str | None] = mapped_column(String(100))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Escalation(Base):
    """An alarm that a person must act on: fever, symptom, emergency or a missed report.

    `level` 0 is the grid worker; 1 adds the grid leader and the team's medical worker; 2 the street
    duty officer. `deadline_at` is when it moves up if nobody has acknowledged it.

    The household may be unknown: a fever from a group member the roster does not know is an
    escalation on the group's `building` (`sender_*` say who wrote); a private one with no address
    has neither, and goes to the street duty officers. When the sender registers, the escalation
    moves to their household. `subject` is the person as the reporter wrote them ("王某某"), and
    `reporter_label` who reported for them ("楼长刘红").
    """

    __tablename__ = "escalations"
    __table_args__ = (
        Index("ix_escalations_open", "status", "deadline_at"),
        Index("ix_escalations_grid_status", "grid_id", "status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(12))  # fever | symptom | emergency | missed
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id"))
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id"))
    sender_channel: Mapped[str | None] = mapped_column(String(16))
    sender_id: Mapped[str | None] = mapped_column(String(128), index=True)
    sender_name: Mapped[str | None] = mapped_column(String(100))
    subject: Mapped[str | None] = mapped_column(String(100))
    reporter_label: Mapped[str | None] = mapped_column(String(100))
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id"))
    # Who reported it (a family member or neighbour may report for someone): they hear the answer.
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id"))
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"))
    level: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(8), default="open")  # open | acked | closed
    summary: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    temperature: Mapped[float | None] = mapped_column(Float)
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    dedup_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    opened_at: Mapped[datetime]
    deadline_at: Mapped[datetime | None]
    acked_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    acked_at: Mapped[datetime | None]
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    closed_at: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(Text)
    household: Mapped[Household | None] = relationship(lazy="joined")
    building: Mapped[Building | None] = relationship(lazy="joined")

    @property
    def code(self) -> str:
        return f"E{self.id}"

    @property
    def place(self) -> str:
        """Where it is, as a worker reads it: '3-2-501', or '3号楼（住户未登记）', or '住址未知'."""
        if self.household is not None:
            return self.household.label
        if self.building is not None:
            return f"{self.building.name}（住户未登记）"
        return "住址未知"


class PendingBinding(Base):
    """A sender who said "3-2-501 钱五" but has not proved it yet: nobody becomes a resident by saying so.

    It becomes a binding when the grid worker confirms it (确认 3-2-501 钱五), or when the sender
    gives the last four digits of the roster phone of `resident_id` (the roster row of that name).
    Until then the sender's reports count for the household as unverified (CheckIn.source
    "claimed"), never as the named person's, and a fever still escalates at once.
    """

    __tablename__ = "pending_bindings"
    __table_args__ = (Index("ix_pending_bindings_sender", "channel", "sender_id", "status"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    sender_id: Mapped[str] = mapped_column(String(128))
    sender_name: Mapped[str | None] = mapped_column(String(100))
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"))
    name: Mapped[str] = mapped_column(String(60))
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id"))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    status: Mapped[str] = mapped_column(String(10), default="pending", server_default="pending")  # pending|bound|refused
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    household: Mapped[Household] = relationship(lazy="joined")


class ListLine(Base):
    """A line of a 接龙 seen in a group on a day, so a re-posted list records only what is new."""

    __tablename__ = "list_lines"
    __table_args__ = (UniqueConstraint("chat_id", "date", "digest"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(128))
    date: Mapped[date] = mapped_column(Date)
    digest: Mapped[str] = mapped_column(String(64))
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id"))
    line: Mapped[str] = mapped_column(Text, default="")
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    created_at: Mapped[datetime]


class ServiceRequest(Base):
    """A request for groceries, medicine, garbage pickup or other help."""

    __tablename__ = "service_requests"
    __table_args__ = (Index("ix_service_requests_grid_status", "grid_id", "status"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    category: Mapped[str] = mapped_column(String(12))  # groceries | medicine | garbage | other
    items: Mapped[list[str]] = mapped_column(default=list)
    text: Mapped[str] = mapped_column(Text, default="")
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"))
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id"))
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id"))
    status: Mapped[str] = mapped_column(String(12), default="open")  # open | taken | done | cancelled
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    created_at: Mapped[datetime]
    taken_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(Text)
    household: Mapped[Household] = relationship(lazy="joined")

    @property
    def code(self) -> str:
        return f"R{self.id}"


class Reminder(Base):
    """A quarantine reminder for (resident, date, slot): sent once, followed up once, then missed."""

    __tablename__ = "reminders"
    __table_args__ = (
        UniqueConstraint("resident_id", "date", "slot"),
        Index("ix_reminders_open", "answered_at", "missed_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"))
    date: Mapped[date] = mapped_column(Date)
    slot: Mapped[str] = mapped_column(String(4))
    due_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    skipped: Mapped[bool] = mapped_column(Boolean, default=False)
    followup_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    missed_at: Mapped[datetime | None]
    escalation_id: Mapped[int | None] = mapped_column(ForeignKey("escalations.id"))


class Notice(Base):
    """A notice staff sent through the bot to one building, a grid, or all their groups."""

    __tablename__ = "notices"
    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    scope: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class JobRun(Base):
    """One run of a scheduled job for one period (e.g. daily-prompt for a date): the sweep's memory."""

    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job", "period"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(40))
    period: Mapped[str] = mapped_column(String(40))
    ran_at: Mapped[datetime]
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AuditEvent(Base):
    """Who did what, when: every staff action and every import."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str | None] = mapped_column(String(100))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
