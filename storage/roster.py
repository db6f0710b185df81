"""Roster import (`gridbot import PATH`): buildings, staff and residents from Excel or CSV.

Three stages, so each can be tested and timed alone:

1. read: an `.xlsx` (sheets 楼栋, 工作人员, 居民) or a folder of `.csv` files with those names →
   (row number, {column: text}) pairs; the header is row 1.
2. validate: each row → a typed record or a `RowError` (pure functions; the cross-references to
   buildings, grids and staff are checked against a `Known` of what the file and the database hold).
3. write: a diff against the keys preloaded from the database, then batched `executemany` inserts
   and updates. A district roster is 300k rows; one ORM object and one query per row would take
   many minutes on SQLite.

A staff member may be reached on several channels: 渠道 "wecom、bridge" (tried in that order) with
one 微信ID for all of them or one per channel ("zhangwei、wxid_zw"); the first is `Staff.channel`,
the others `Staff.alt_channels`. A staff row matches the staff member who has its first channel, else
any of its channels, so reordering 渠道 updates them rather than adding a second person.

Re-importing the same file changes nothing. Rows absent from the file are left alone: the roster
adds and corrects, it never deletes (a resident who bound themselves in chat must not vanish).
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, delete, inspect, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Database
from storage.models import (
    CATEGORIES,
    CHANNELS,
    ROLES,
    STREET_ROLES,
    AuditEvent,
    Building,
    Community,
    Grid,
    Household,
    Quarantine,
    Resident,
    Staff,
    StaffScope,
    Street,
)
from storage.privacy import redact

log = logging.getLogger(__name__)

SHEET_BUILDINGS = "楼栋"
SHEET_STAFF = "工作人员"
SHEET_RESIDENTS = "居民"
# Residents refer to staff (包保*), staff refer to grids (负责), so this order resolves every reference.
SHEETS = (SHEET_BUILDINGS, SHEET_STAFF, SHEET_RESIDENTS)

COLUMNS = {
    SHEET_BUILDINGS: ("街道", "社区", "网格", "楼栋", "群ID", "渠道"),
    SHEET_STAFF: ("姓名", "角色", "手机", "微信ID", "渠道", "负责"),
    SHEET_RESIDENTS: ("楼栋", "单元", "房号", "姓名", "手机", "微信ID", "渠道", "类别", "隔离开始",
                      "包保干部", "包保民警", "包保医护"),
}
# Without these a row means nothing; the other columns may be left out of a sheet entirely.
REQUIRED = {
    SHEET_BUILDINGS: ("街道", "社区", "网格", "楼栋"),
    SHEET_STAFF: ("姓名", "角色", "微信ID"),
    SHEET_RESIDENTS: ("楼栋", "房号", "姓名"),
}
DISTRICT = "全区"
BATCH = 5000

Row = dict[str, str]


# --- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    """One reason a row (or, with `more`, several rows) did not load; row 0 is the sheet as a whole."""

    sheet: str
    row: int  # 1 is the header; 0 means the sheet as a whole
    reason: str
    more: tuple[int, ...] = ()  # further rows rejected for the same reason, reported once

    @property
    def rows(self) -> int:
        return 0 if self.row == 0 else 1 + len(self.more)

    def __str__(self) -> str:
        if self.row == 0:
            return f"{self.sheet}: {self.reason}"
        if not self.more:
            return f"{self.sheet} 第{self.row}行: {self.reason}"
        return f"{self.sheet} 第{_spans([self.row, *self.more])}行（共{self.rows}行）: {self.reason}"


def _spans(rows: list[int]) -> str:
    """2,3,4,7 -> "2-4、7": row numbers as runs."""
    runs: list[list[int]] = []
    for n in sorted(rows):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return "、".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


@dataclass
class SheetCounts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    present: bool = False

    def as_dict(self) -> dict[str, int]:
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged,
                "rejected": self.rejected}


@dataclass
class ImportReport:
    counts: dict[str, SheetCounts] = field(default_factory=lambda: {s: SheetCounts() for s in SHEETS})
    errors: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def changed(self) -> bool:
        return any(c.added or c.updated for c in self.counts.values())

    def reject(self, err: RowError) -> None:
        self.errors.append(err)
        self.counts[err.sheet].rejected += err.rows

    @property
    def sheets_rejected(self) -> list[str]:
        """Sheets that could not be read at all (a required column missing)."""
        return [e.sheet for e in self.errors if e.row == 0]

    def closing(self) -> str:
        """The last line after the errors: how many rows were rejected, and what still loaded."""
        rows = sum(c.rejected for c in self.counts.values())
        whole = self.sheets_rejected
        loaded = any(c.added or c.updated or c.unchanged for c in self.counts.values())
        parts = []
        if rows:
            parts.append(f"共拒绝 {rows} 行")
        if whole:
            parts.append(f"{'、'.join(whole)}表整张未导入")
        if not loaded:
            return "；".join(parts) + "；没有导入任何行。"
        rest = "其余行已导入" if not whole else "其余表的有效行已导入"
        return "；".join([*parts, rest]) + "。"

    def summary(self) -> str:
        lines = [_pad("表", 10) + "".join(_pad(h, 8, right=True) for h in ("新增", "更新", "未变", "拒绝"))]
        for sheet in SHEETS:
            c = self.counts[sheet]
            cells = "".join(_pad(str(n), 8, right=True) for n in (c.added, c.updated, c.unchanged, c.rejected))
            lines.append(_pad(sheet, 10) + cells + ("" if c.present else "  (文件中没有此表)"))
        return "\n".join(lines)


def _pad(text: str, width: int, right: bool = False) -> str:
    """Pads by display width: a Chinese character takes two terminal columns."""
    import unicodedata

    w = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    fill = " " * max(width - w, 0)
    return fill + text if right else text + fill


class RosterError(Exception):
    """The roster as a whole cannot be read (no such file, not a roster)."""


class SchemaMissing(Exception):
    """The database has no tables: `gridbot init` was not run."""


# --- stage 1: reading -----------------------------------------------------------------------------


def cell_text(value: Any) -> str:
    """A cell as text: Excel hands over ints, floats (13800138000.0) and dates; CSV only strings."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


@dataclass
class Sheet:
    name: str
    header: list[str]
    rows: Iterator[tuple[int, Row]]
    total: int | None = None  # for the progress bar, when cheaply known


def _rows(header: list[str], raw: Iterable[Iterable[Any]]) -> Iterator[tuple[int, Row]]:
    for number, values in enumerate(raw, start=2):
        texts = [cell_text(v) for v in values]
        if not any(texts):
            continue
        yield number, {h: (texts[i] if i < len(texts) else "") for i, h in enumerate(header) if h}


def decode_csv(data: bytes) -> str:
    """UTF-8 with or without BOM, else GBK (what Excel on a Chinese Windows writes)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("gb18030")


def read_roster(path: str | Path) -> dict[str, Sheet]:
    """The sheets the roster has, by name; a missing sheet is simply absent."""
    path = Path(path)
    if not path.exists():
        raise RosterError(f"找不到花名册: {path}")
    sheets: dict[str, Sheet] = {}
    if path.is_dir():
        for name in SHEETS:
            f = path / f"{name}.csv"
            if not f.is_file():
                continue
            text = decode_csv(f.read_bytes())
            reader = csv.reader(io.StringIO(text, newline=""))
            header = [h.strip() for h in next(reader, [])]
            sheets[name] = Sheet(name, header, _rows(header, reader), total=max(text.count("\n") - 1, 0))
    elif path.suffix.lower() in (".xlsx", ".xlsm"):
        import openpyxl

        try:
            wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for a bad file
            raise RosterError(f"无法读取 Excel 文件 {path.name}: {exc}") from exc
        for name in SHEETS:
            if name not in wb.sheetnames:
                continue
            ws = wb[name]
            it = ws.iter_rows(values_only=True)
            header = [cell_text(h) for h in next(it, ())]
            total = (ws.max_row - 1) if ws.max_row else None
            sheets[name] = Sheet(name, header, _rows(header, it), total=total)
    else:
        raise RosterError(f"花名册应是 .xlsx 文件或含 .csv 文件的文件夹: {path}")
    if not sheets:
        raise RosterError(f"{path} 中没有 楼栋/工作人员/居民 任何一张表")
    return sheets


def missing_columns(sheet: str, header: list[str]) -> list[str]:
    return [c for c in REQUIRED[sheet] if c not in header]


# --- stage 2: validation --------------------------------------------------------------------------


_DATE_PATTERNS = (
    re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$"),
    re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})$"),
    re.compile(r"^(\d{4})\.(\d{1,2})\.(\d{1,2})$"),
    re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日?$"),
)


def parse_date(text: str) -> date:
    """`2026-02-10`, `2026/2/10`, `2026年2月10日` (Excel date cells arrive as `2026-02-10`)."""
    t = text.strip()
    # Excel cells read as datetimes come through cell_text as ISO, possibly with a time part.
    if "T" in t and t[:4].isdigit():
        t = t.split("T", 1)[0]
    for pat in _DATE_PATTERNS:
        m = pat.match(t)
        if m:
            y, mo, d = (int(g) for g in m.groups())
            try:
                return date(y, mo, d)
            except ValueError:
                raise ValueError(f"不存在的日期 {text!r}") from None
    raise ValueError(f"无法识别的日期 {text!r}（应为 2026-02-10）")


_DIGITS = re.compile(r"\d+")


def building_number(name: str) -> str:
    """How residents write the building: "3号楼" → "3", "12栋" → "12", "5号院" → "5"."""
    m = _DIGITS.search(name)
    return str(int(m.group())) if m else name


def split_list(text: str) -> list[str]:
    return [t.strip() for t in re.split(r"[、,，;；]", text) if t.strip()]


@dataclass(frozen=True)
class BuildingRec:
    row: int
    street: str
    community: str
    grid: str
    name: str
    number: str
    chat_id: str | None
    channel: str


@dataclass(frozen=True)
class StaffRec:
    """`channel`/`uid` first; `alt` the channels to try after it, in the roster's order."""

    row: int
    name: str
    role: str
    phone: str | None
    channel: str
    uid: str
    scopes: tuple[str, ...]
    alt: tuple[tuple[str, str], ...] = ()

    @property
    def contacts(self) -> list[tuple[str, str]]:
        return [(self.channel, self.uid), *self.alt]

    @property
    def alt_channels(self) -> list[dict[str, str]]:
        return [{"channel": ch, "id": uid} for ch, uid in self.alt]


@dataclass(frozen=True)
class ResidentRec:
    row: int
    building: str
    unit: str
    room: str
    name: str
    phone: str | None
    channel: str | None
    uid: str | None
    category: str
    quarantine_start: date | None
    cadre: str | None
    police: str | None
    medic: str | None

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.building, self.unit, self.room, self.name)


@dataclass
class Known:
    """What the rows may refer to: names from the file's valid rows plus what the database holds."""

    buildings: dict[str, str] = field(default_factory=dict)  # building name -> its channel
    grids: set[str] = field(default_factory=set)
    streets: set[str] = field(default_factory=set)
    staff_uids: set[str] = field(default_factory=set)
    # building name -> the 楼栋 sheet row that named it and was rejected (for the residents' errors)
    rejected_buildings: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildingRejected(RowError):
    """A resident row whose building's own row was rejected: the import reports these once per
    building, with the rows they affect (RowError.more)."""

    building: str = ""

    @classmethod
    def of(cls, row: int, building: str, building_row: int) -> BuildingRejected:
        return cls(SHEET_RESIDENTS, row, f"楼栋 {building!r} 在楼栋表第{building_row}行被拒绝（见上），"
                                         "这些居民未导入", building=building)


_PHONE_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\uff0d]")
_MOBILE = re.compile(r"^(?:\+?86)?(1[3-9]\d{9})$")
_LANDLINE = re.compile(r"^(0\d{2,3})[\s\-\u2010-\u2015\uff0d]+([1-9]\d{6,7})$")


def parse_phone(text: str) -> str:
    """A phone cell as stored: a mainland mobile (11 digits, 13-19; "+86", spaces and dashes allowed)
    as its 11 digits, or a landline with its area code ("010-12345678", "0571 1234567") as
    "area-number". Anything else is a ValueError naming the cell."""
    t = text.strip()
    m = _MOBILE.match(_PHONE_SEPARATORS.sub("", t))
    if m:
        return m.group(1)
    digits = _PHONE_SEPARATORS.sub("", t)
    m = _LANDLINE.match(t)
    if m is None and digits.isdigit() and digits.startswith("0") and 10 <= len(digits) <= 12:
        # no separator: 010/02x area codes have three digits, the others four
        cut = 3 if digits[1] in "12" else 4
        m = _LANDLINE.match(f"{digits[:cut]}-{digits[cut:]}")
    if m:
        return f"{m.group(1)}-{m.group(2)}"
    raise ValueError(f"手机 {text!r} 不是有效的电话号码（应为11位手机号，如 13800138000；"
                     "或带区号的座机，如 010-12345678、0571-1234567）")


def _phone(r: Row) -> str | None:
    text = r.get("手机", "")
    return parse_phone(text) if text.strip() else None


def _channel(text: str, default: str | None) -> str | None:
    ch = text.strip().lower()
    if not ch:
        return default
    if ch not in CHANNELS:
        raise ValueError(f"未知渠道 {text!r}（可用: {', '.join(CHANNELS)}）")
    return ch


def _staff_contacts(channels_text: str, ids_text: str) -> list[tuple[str, str]]:
    """A staff row's 渠道 ("wecom", or "wecom、bridge": tried in that order) and 微信ID (one id for
    every channel, or one per channel in the same order) as (channel, id) pairs."""
    channels: list[str] = []
    for text in split_list(channels_text) or ["wecom"]:
        ch = _channel(text, "wecom") or "wecom"
        if ch in channels:
            raise ValueError(f"渠道 {ch!r} 重复（可用: {', '.join(CHANNELS)}，以“、”分隔）")
        channels.append(ch)
    ids = split_list(ids_text)
    if len(ids) == 1:
        ids = ids * len(channels)
    elif len(ids) != len(channels):
        raise ValueError(f"微信ID 有{len(ids)}个，渠道有{len(channels)}个：应为一个微信ID（各渠道通用），"
                         "或每个渠道一个，以“、”分隔、顺序与渠道相同")
    return list(zip(channels, ids, strict=True))


def validate_building(row: int, r: Row) -> BuildingRec | RowError:
    try:
        for col in REQUIRED[SHEET_BUILDINGS]:
            if not r.get(col):
                raise ValueError(f"缺少{col}")
        channel = _channel(r.get("渠道", ""), "wecom")
    except ValueError as exc:
        return RowError(SHEET_BUILDINGS, row, str(exc))
    name = r["楼栋"]
    return BuildingRec(row, r["街道"], r["社区"], r["网格"], name, building_number(name),
                       r.get("群ID") or None, channel or "wecom")


def validate_staff(row: int, r: Row, known: Known) -> StaffRec | RowError:
    try:
        for col in REQUIRED[SHEET_STAFF]:
            if not r.get(col):
                raise ValueError(f"缺少{col}")
        role = r["角色"]
        if role not in ROLES:
            raise ValueError(f"未知角色 {role!r}（可用: {'、'.join(ROLES)}）")
        contacts = _staff_contacts(r.get("渠道", ""), r["微信ID"])
        scopes = split_list(r.get("负责", ""))
        for s in scopes:
            if role in STREET_ROLES and (s in known.streets or s == DISTRICT):
                continue
            if s not in known.grids:
                what = "网格或街道" if role in STREET_ROLES else "网格"
                raise ValueError(f"负责中有未知{what} {s!r}")
        phone = _phone(r)
    except ValueError as exc:
        return RowError(SHEET_STAFF, row, str(exc))
    (channel, uid), *alt = contacts
    return StaffRec(row, r["姓名"], role, phone, channel, uid, tuple(scopes), tuple(alt))


def validate_resident(row: int, r: Row, known: Known) -> ResidentRec | RowError:
    try:
        for col in REQUIRED[SHEET_RESIDENTS]:
            if not r.get(col):
                raise ValueError(f"缺少{col}")
        building = r["楼栋"]
        if building not in known.buildings:
            if building in known.rejected_buildings:
                return BuildingRejected.of(row, building, known.rejected_buildings[building])
            raise ValueError(f"未知楼栋 {building!r}")
        phone = _phone(r)
        category = r.get("类别") or "常住"
        if category not in CATEGORIES:
            raise ValueError(f"未知类别 {category!r}（可用: {'、'.join(CATEGORIES)}）")
        start = parse_date(r["隔离开始"]) if r.get("隔离开始") else None
        if category == "居家隔离" and start is None:
            raise ValueError("居家隔离缺少隔离开始日期")
        uid = r.get("微信ID") or None
        # A resident usually talks on their building's channel; say so only when it differs.
        channel = _channel(r.get("渠道", ""), known.buildings[building]) if uid else None
        team: list[str | None] = []
        for col in ("包保干部", "包保民警", "包保医护"):
            sid = r.get(col) or None
            if sid is not None and sid not in known.staff_uids:
                raise ValueError(f"{col} {sid!r} 不是已知工作人员的微信ID")
            team.append(sid)
    except ValueError as exc:
        return RowError(SHEET_RESIDENTS, row, str(exc))
    return ResidentRec(row, building, r.get("单元", ""), r["房号"], r["姓名"], phone,
                       channel, uid, category, start, *team)


# --- stage 3: writing -----------------------------------------------------------------------------


def _batches(rows: list[dict[str, Any]], size: int = BATCH) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), size):
        yield rows[i:i + size]


async def _insert(s: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> None:
    table = model.__table__
    for batch in _batches(rows):
        await s.execute(table.insert(), batch)


async def _update(s: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> None:
    """Rows are dicts with "id" and the same other keys; one executemany per batch."""
    if not rows:
        return
    table = model.__table__
    cols = [k for k in rows[0] if k != "id"]
    stmt = (update(table).where(table.c.id == bindparam("_id"))
            .values({c: bindparam(c) for c in cols}))
    for batch in _batches(rows):
        await s.execute(stmt, [{"_id": r["id"], **{c: r[c] for c in cols}} for r in batch])


class _Progress:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def wrap(self, sheet: Sheet) -> Iterable[tuple[int, Row]]:
        if not self.enabled:
            return sheet.rows
        from tqdm import tqdm

        return tqdm(sheet.rows, total=sheet.total, desc=sheet.name, unit="行", file=sys.stderr,
                    leave=False, mininterval=0.5)


async def ensure_schema(db: Database) -> None:
    def _has(conn) -> bool:
        return inspect(conn).has_table(Building.__tablename__)

    async with db.engine.connect() as conn:
        if not await conn.run_sync(_has):
            raise SchemaMissing("数据库还没有建表：请先运行 gridbot init")


async def import_roster(db: Database, path: str | Path, *, tz: tzinfo, quarantine_days: int,
                        progress: bool = False) -> ImportReport:
    """Loads a roster into the database in one transaction; see the module docstring.

    `tz` dates the audit row and today's quarantines; a resident listed as 居家隔离 without an end
    is quarantined for `quarantine_days` from the start given (or today)."""
    await ensure_schema(db)
    # Reading is CPU-bound and synchronous (openpyxl): keep it off the event loop's back.
    sheets = await asyncio.to_thread(read_roster, path)
    report = ImportReport()
    bar = _Progress(progress)
    now = datetime.now(tz)
    async with db.session() as s:
        known = Known()
        known.grids = set((await s.scalars(select(Grid.name))).all())
        known.streets = set((await s.scalars(select(Street.name))).all())
        known.buildings = dict((await s.execute(select(Building.name, Building.channel))).all())
        for uid, alt in (await s.execute(select(Staff.channel_user_id, Staff.alt_channels))).all():
            known.staff_uids.add(uid)
            known.staff_uids.update(c.get("id") for c in alt or () if c.get("id"))
        for name in SHEETS:
            sheet = sheets.get(name)
            if sheet is None:
                continue
            report.counts[name].present = True
            lacking = missing_columns(name, sheet.header)
            if lacking:
                report.reject(RowError(name, 0, f"缺少必需的列 {'、'.join(lacking)}，整张表未导入"))
                continue
            if name == SHEET_BUILDINGS:
                await _import_buildings(s, bar.wrap(sheet), known, report)
            elif name == SHEET_STAFF:
                await _import_staff(s, bar.wrap(sheet), known, report)
            else:
                await _import_residents(s, bar.wrap(sheet), known, report, quarantine_days, now)
        s.add(AuditEvent(at=now, action="import", target=Path(path).name[:100], detail={
            "counts": {k: v.as_dict() for k, v in report.counts.items()},
            "errors": len(report.errors),
        }))
    report.errors = [RowError(e.sheet, e.row, redact(e.reason), e.more) for e in report.errors]
    log.info("roster import %s: %s", Path(path).name,
             {k: v.as_dict() for k, v in report.counts.items()})
    return report


async def _import_buildings(s: AsyncSession, rows: Iterable[tuple[int, Row]], known: Known,
                            report: ImportReport) -> None:
    counts = report.counts[SHEET_BUILDINGS]
    recs: list[BuildingRec] = []
    names: set[str] = set()
    chats: dict[str, str] = {}
    grid_community: dict[str, tuple[str, str]] = {}
    for number, r in rows:
        rec = validate_building(number, r)
        if isinstance(rec, BuildingRec):
            where = (rec.street, rec.community)
            if rec.name in names:
                rec = RowError(SHEET_BUILDINGS, number, f"楼栋 {rec.name!r} 在表中重复")
            elif rec.chat_id and rec.chat_id in chats:
                rec = RowError(SHEET_BUILDINGS, number,
                               f"群ID {rec.chat_id!r} 已用于楼栋 {chats[rec.chat_id]!r}（重复的渠道ID）")
            elif grid_community.setdefault(rec.grid, where) != where:
                other = grid_community[rec.grid]
                rec = RowError(SHEET_BUILDINGS, number,
                               f"网格 {rec.grid!r} 已属于 {other[0]}{other[1]}，不能同时属于 {where[0]}{where[1]}")
        if isinstance(rec, RowError):
            report.reject(rec)
            if r.get("楼栋"):
                known.rejected_buildings.setdefault(r["楼栋"], number)
            continue
        names.add(rec.name)
        if rec.chat_id:
            chats[rec.chat_id] = rec.name
        recs.append(rec)

    # A group chat already bound to another building stays bound unless that building moves too.
    db_chats = dict((await s.execute(select(Building.chat_id, Building.name)
                                     .where(Building.chat_id.is_not(None)))).all())
    moving = {rec.name for rec in recs}
    ok: list[BuildingRec] = []
    file_chat = {rec.name: rec.chat_id for rec in recs}
    for rec in recs:
        holder = db_chats.get(rec.chat_id) if rec.chat_id else None
        if holder and holder != rec.name and not (holder in moving and file_chat[holder] != rec.chat_id):
            report.reject(RowError(SHEET_BUILDINGS, rec.row,
                                   f"群ID {rec.chat_id!r} 已绑定到楼栋 {holder!r}（重复的渠道ID）"))
            known.rejected_buildings.setdefault(rec.name, rec.row)
            continue
        ok.append(rec)

    streets = dict((await s.execute(select(Street.name, Street.id))).all())
    for name in sorted({r.street for r in ok} - streets.keys()):
        street = Street(name=name)
        s.add(street)
        await s.flush()
        streets[name] = street.id
    communities = {(sid, n): cid for cid, sid, n in
                   (await s.execute(select(Community.id, Community.street_id, Community.name))).all()}
    for key in sorted({(streets[r.street], r.community) for r in ok} - communities.keys()):
        comm = Community(street_id=key[0], name=key[1])
        s.add(comm)
        await s.flush()
        communities[key] = comm.id
    grids = {n: (gid, cid) for gid, n, cid in (await s.execute(select(Grid.id, Grid.name, Grid.community_id))).all()}
    for rec in ok:
        cid = communities[(streets[rec.street], rec.community)]
        if rec.grid not in grids:
            grid = Grid(name=rec.grid, community_id=cid)
            s.add(grid)
            await s.flush()
            grids[rec.grid] = (grid.id, cid)
        elif grids[rec.grid][1] != cid:
            await s.execute(update(Grid).where(Grid.id == grids[rec.grid][0]).values(community_id=cid))
            grids[rec.grid] = (grids[rec.grid][0], cid)

    existing = {row.name: row for row in (await s.execute(
        select(Building.id, Building.name, Building.number, Building.grid_id, Building.chat_id,
               Building.channel))).all()}
    inserts, updates = [], []
    for rec in ok:
        values = {"name": rec.name, "number": rec.number, "grid_id": grids[rec.grid][0],
                  "chat_id": rec.chat_id, "channel": rec.channel}
        old = existing.get(rec.name)
        if old is None:
            inserts.append(values)
            counts.added += 1
        elif (old.number, old.grid_id, old.chat_id, old.channel) != (
                rec.number, values["grid_id"], rec.chat_id, rec.channel):
            updates.append({"id": old.id, **values})
            counts.updated += 1
        else:
            counts.unchanged += 1
    # Chat ids that move between buildings would collide on the unique index mid-update.
    moved = [u["id"] for u in updates if u["chat_id"] != existing[u["name"]].chat_id]
    if moved:
        await s.execute(update(Building).where(Building.id.in_(moved)).values(chat_id=None))
    await _update(s, Building, updates)
    await _insert(s, Building, inserts)
    known.buildings.update({rec.name: rec.channel for rec in ok})
    for name in known.buildings:  # named again by a good row (or already in the database)
        known.rejected_buildings.pop(name, None)
    known.grids.update(grids)
    known.streets.update(streets)


async def _import_staff(s: AsyncSession, rows: Iterable[tuple[int, Row]], known: Known,
                        report: ImportReport) -> None:
    counts = report.counts[SHEET_STAFF]
    seen: dict[tuple[str, str], int] = {}
    recs: list[StaffRec] = []
    for number, r in rows:
        rec = validate_staff(number, r, known)
        if isinstance(rec, StaffRec):
            for ch, uid in rec.contacts:
                if (ch, uid) in seen:
                    rec = RowError(SHEET_STAFF, number, f"渠道 {ch} 的微信ID {uid!r} 与第{seen[(ch, uid)]}行重复")
                    break
        if isinstance(rec, RowError):
            report.reject(rec)
            continue
        seen.update({c: rec.row for c in rec.contacts})
        recs.append(rec)

    grid_ids = dict((await s.execute(select(Grid.name, Grid.id))).all())
    street_ids = dict((await s.execute(select(Street.name, Street.id))).all())
    # A row is the staff member who has its first channel, else any of its channels (渠道 reordered).
    existing: dict[tuple[str, str], Any] = {}
    by_alt: dict[tuple[str, str], Any] = {}
    for row in (await s.execute(select(Staff.id, Staff.name, Staff.role, Staff.phone, Staff.channel,
                                       Staff.channel_user_id, Staff.alt_channels))).all():
        existing[(row.channel, row.channel_user_id)] = row
        for c in row.alt_channels or ():
            by_alt.setdefault((c.get("channel"), c.get("id")), row)
    scopes: dict[int, set[tuple[int | None, int | None]]] = {}
    for sid, gid, stid in (await s.execute(select(StaffScope.staff_id, StaffScope.grid_id,
                                                  StaffScope.street_id))).all():
        scopes.setdefault(sid, set()).add((gid, stid))

    def wanted(rec: StaffRec) -> set[tuple[int | None, int | None]]:
        out: set[tuple[int | None, int | None]] = set()
        for name in rec.scopes:
            if rec.role in STREET_ROLES and name == DISTRICT:
                out.add((None, None))
            elif rec.role in STREET_ROLES and name in street_ids:
                out.add((None, street_ids[name]))
            else:
                out.add((grid_ids[name], None))
        return out

    inserts, updates, new_recs = [], [], []
    replace_scopes: dict[int, set[tuple[int | None, int | None]]] = {}
    claimed: set[int] = set()
    for rec in recs:
        old = existing.get((rec.channel, rec.uid))
        if old is None:
            old = next((o for c in rec.contacts if (o := existing.get(c) or by_alt.get(c)) is not None
                        and o.id not in claimed), None)
        if old is not None:
            claimed.add(old.id)
        # An empty phone cell keeps the number we have rather than erasing it.
        phone = rec.phone if rec.phone is not None else (old.phone if old else None)
        values = {"name": rec.name, "role": rec.role, "phone": phone, "channel": rec.channel,
                  "channel_user_id": rec.uid, "alt_channels": rec.alt_channels}
        want = wanted(rec)
        if old is None:
            inserts.append({**values, "password_hash": None})
            new_recs.append((rec, want))
            counts.added += 1
            continue
        changed = False
        if (old.name, old.role, old.phone, old.channel, old.channel_user_id, old.alt_channels or []) != (
                rec.name, rec.role, phone, rec.channel, rec.uid, rec.alt_channels):
            updates.append({"id": old.id, **values})
            changed = True
        if scopes.get(old.id, set()) != want:
            replace_scopes[old.id] = want
            changed = True
        if changed:
            counts.updated += 1
        else:
            counts.unchanged += 1
    await _update(s, Staff, updates)
    await _insert(s, Staff, inserts)
    if new_recs:
        ids = {(ch, uid): sid for sid, ch, uid in (await s.execute(
            select(Staff.id, Staff.channel, Staff.channel_user_id))).all()}
        for rec, want in new_recs:
            replace_scopes[ids[(rec.channel, rec.uid)]] = want
    if replace_scopes:
        ids = list(replace_scopes)
        for i in range(0, len(ids), 500):
            await s.execute(delete(StaffScope).where(StaffScope.staff_id.in_(ids[i:i + 500])))
        await _insert(s, StaffScope, [{"staff_id": sid, "grid_id": g, "street_id": st}
                                      for sid, want in replace_scopes.items() for g, st in sorted(
                                          want, key=lambda t: (t[0] or 0, t[1] or 0))])
    known.staff_uids.update(uid for rec in recs for _, uid in rec.contacts)


async def _import_residents(s: AsyncSession, rows: Iterable[tuple[int, Row]], known: Known,
                            report: ImportReport, quarantine_days: int, now: datetime) -> None:
    counts = report.counts[SHEET_RESIDENTS]
    recs: list[ResidentRec] = []
    keys: dict[tuple[str, str, str, str], int] = {}
    uids: dict[tuple[str, str], int] = {}
    # A rejected building's residents: one error for all of them, where the first one was.
    orphans: dict[str, tuple[int, str, list[int]]] = {}  # building -> (error index, reason, rows)
    for number, r in rows:
        rec = validate_resident(number, r, known)
        if isinstance(rec, BuildingRejected):
            if rec.building not in orphans:
                orphans[rec.building] = (len(report.errors), rec.reason, [])
                report.errors.append(rec)  # replaced below by the one error for all its rows
            orphans[rec.building][2].append(number)
            continue
        if isinstance(rec, ResidentRec):
            if rec.key in keys:
                rec = RowError(SHEET_RESIDENTS, number, f"同一户的居民 {rec.name!r} 与第{keys[rec.key]}行重复")
            elif rec.uid and (rec.channel, rec.uid) in uids:
                rec = RowError(SHEET_RESIDENTS, number,
                               f"渠道 {rec.channel} 的微信ID {rec.uid!r} 与第{uids[(rec.channel, rec.uid)]}行重复")
        if isinstance(rec, RowError):
            report.reject(rec)
            continue
        keys[rec.key] = rec.row
        if rec.uid:
            uids[(rec.channel, rec.uid)] = rec.row  # type: ignore[index]
        recs.append(rec)
    for at, reason, numbers in orphans.values():
        report.errors[at] = RowError(SHEET_RESIDENTS, numbers[0], reason, tuple(numbers[1:]))
        counts.rejected += len(numbers)
    if not recs:
        return

    buildings = dict((await s.execute(select(Building.name, Building.id))).all())
    households = {(b, u, r): hid for hid, b, u, r in (await s.execute(
        select(Household.id, Household.building_id, Household.unit, Household.room))).all()}
    new_households = []
    for rec in recs:
        hk = (buildings[rec.building], rec.unit, rec.room)
        if hk not in households:
            households[hk] = 0  # placeholder until inserted
            new_households.append({"building_id": hk[0], "unit": rec.unit, "room": rec.room})
    if new_households:
        await _insert(s, Household, new_households)
        households = {(b, u, r): hid for hid, b, u, r in (await s.execute(
            select(Household.id, Household.building_id, Household.unit, Household.room))).all()}

    staff_ids: dict[str, int] = {}
    rows_by_age = (await s.execute(select(Staff.id, Staff.channel_user_id, Staff.alt_channels)
                                   .order_by(Staff.id.desc()))).all()
    for sid, uid, _ in rows_by_age:
        staff_ids[uid] = sid  # the oldest wins when one id exists on two channels
    for sid, _, alt in reversed(rows_by_age):  # then the ids of their other channels, oldest first
        for c in alt or ():
            if c.get("id") and c["id"] not in staff_ids:
                staff_ids[c["id"]] = sid

    cols = (Resident.id, Resident.household_id, Resident.name, Resident.phone, Resident.channel,
            Resident.channel_user_id, Resident.category, Resident.cadre_id, Resident.police_id,
            Resident.medic_id)
    existing: dict[tuple[int, str], Any] = {}
    holders: dict[tuple[str, str], tuple[int, str]] = {}
    for row in (await s.execute(select(*cols))).all():
        existing[(row.household_id, row.name)] = row
        if row.channel_user_id:
            holders[(row.channel, row.channel_user_id)] = (row.household_id, row.name)

    planned_uid: dict[tuple[int, str], tuple[str | None, str | None]] = {}
    for rec in recs:
        hid = households[(buildings[rec.building], rec.unit, rec.room)]
        if rec.uid:
            planned_uid[(hid, rec.name)] = (rec.channel, rec.uid)

    # Quarantines are part of the resident's row: preload them to count a row once.
    active: dict[int, tuple[int, date]] = {}
    served: set[tuple[int, date]] = set()
    for qid, rid, start, released in (await s.execute(
            select(Quarantine.id, Quarantine.resident_id, Quarantine.start, Quarantine.released_at))).all():
        served.add((rid, start))
        if released is None:
            active[rid] = (qid, start)

    inserts, updates = [], []
    q_moves: list[dict[str, Any]] = []
    q_new: list[tuple[tuple[int, str] | int, date]] = []  # by resident id, or by key for new residents
    clear_uid: list[int] = []
    for rec in recs:
        hid = households[(buildings[rec.building], rec.unit, rec.room)]
        key = (hid, rec.name)
        old = existing.get(key)
        if rec.uid:
            holder = holders.get((rec.channel, rec.uid))  # type: ignore[arg-type]
            if holder is not None and holder != key:
                # Allowed only when the holder is in this file with another id: the id moves over.
                theirs = planned_uid.get(holder)
                if theirs is None or theirs == (rec.channel, rec.uid):
                    report.reject(RowError(SHEET_RESIDENTS, rec.row,
                                           f"渠道 {rec.channel} 的微信ID {rec.uid!r} 已绑定到另一位居民（重复的渠道ID）"))
                    continue
        team = [staff_ids[x] if x else None for x in (rec.cadre, rec.police, rec.medic)]
        # Empty cells keep what we have: a resident who bound themselves in chat stays bound.
        phone = rec.phone if rec.phone is not None else (old.phone if old else None)
        if rec.uid:
            channel, uid = rec.channel, rec.uid
        else:
            channel, uid = (old.channel, old.channel_user_id) if old else (None, None)
        values = {"household_id": hid, "name": rec.name, "phone": phone, "channel": channel,
                  "channel_user_id": uid, "category": rec.category, "cadre_id": team[0],
                  "police_id": team[1], "medic_id": team[2]}
        if old is None:
            inserts.append({**values, "bound_at": now if uid else None})
            counts.added += 1
            if rec.category == "居家隔离" and rec.quarantine_start:
                q_new.append((key, rec.quarantine_start))
            continue
        changed = False
        if (old.phone, old.channel, old.channel_user_id, old.category, old.cadre_id, old.police_id,
                old.medic_id) != (phone, channel, uid, rec.category, *team):
            if (old.channel, old.channel_user_id) != (channel, uid):
                clear_uid.append(old.id)
            updates.append({"id": old.id, **values})
            changed = True
        if rec.category == "居家隔离" and rec.quarantine_start:
            start = rec.quarantine_start
            if old.id in active:
                if active[old.id][1] != start:
                    q_moves.append({"id": active[old.id][0], "start": start})
                    changed = True
            elif (old.id, start) not in served:  # a released one with this start was already served
                q_new.append((old.id, start))
                changed = True
        if changed:
            counts.updated += 1
        else:
            counts.unchanged += 1

    if clear_uid:
        for i in range(0, len(clear_uid), 500):
            await s.execute(update(Resident).where(Resident.id.in_(clear_uid[i:i + 500]))
                            .values(channel=None, channel_user_id=None))
    # bound_at is only touched when the binding itself changes.
    rebound = set(clear_uid)
    plain = [u for u in updates if u["id"] not in rebound]
    moved = [{**u, "bound_at": now if u["channel_user_id"] else None} for u in updates if u["id"] in rebound]
    await _update(s, Resident, plain)
    await _update(s, Resident, moved)
    await _insert(s, Resident, inserts)
    if q_new or q_moves:
        new_ids: dict[tuple[int, str], int] = {}
        if any(isinstance(k, tuple) for k, _ in q_new):
            new_ids = {(hid, name): rid for rid, hid, name in (await s.execute(
                select(Resident.id, Resident.household_id, Resident.name)
                .where(Resident.category == "居家隔离"))).all()}
        await _update(s, Quarantine, q_moves)
        await _insert(s, Quarantine, [
            {"resident_id": new_ids[k] if isinstance(k, tuple) else k, "start": start,
             "days": quarantine_days, "released_at": None, "released_by": None,
             "end_prompted_at": None}
            for k, start in q_new])

