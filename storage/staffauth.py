"""Staff dashboard passwords: scrypt with a random salt, in a self-describing string.

    scrypt$n=16384,r=8,p=1$<salt, base64>$<hash, base64>

The parameters travel with the hash, so they can be raised later without breaking old passwords.
"""

from __future__ import annotations

import asyncio
import base64
import getpass
import hashlib
import hmac
import os
import sys
from datetime import datetime

from sqlalchemy import select

SCHEME = "scrypt"
N, R, P = 2**14, 8, 1
DKLEN = 32
MIN_LENGTH = 8


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=N, r=R, p=P, dklen=DKLEN)
    return f"{SCHEME}$n={N},r={R},p={P}${_b64(salt)}${_b64(digest)}"


def verify_password(stored: str | None, password: str) -> bool:
    """True when `password` matches; a malformed or missing hash never matches."""
    if not stored:
        return False
    try:
        scheme, params, salt_b64, digest_b64 = stored.split("$")
        if scheme != SCHEME:
            return False
        opts = {k: int(v) for k, v in (kv.split("=") for kv in params.split(","))}
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
        # Refuse absurd parameters from a tampered row rather than burn memory on them.
        if not (2 <= opts["n"] <= 2**20 and 1 <= opts["r"] <= 32 and 1 <= opts["p"] <= 16):
            return False
        digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=opts["n"], r=opts["r"], p=opts["p"],
                                dklen=len(expected), maxmem=256 * 1024 * 1024)
    except (ValueError, KeyError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


def read_password(stdin=None) -> str | None:
    """The first line of standard input when it is not a terminal; else asked twice."""
    stdin = stdin or sys.stdin
    if not stdin.isatty():
        return stdin.readline().rstrip("\r\n")
    first = getpass.getpass("新密码: ")
    second = getpass.getpass("再输入一次: ")
    if first != second:
        print("两次输入不一致", file=sys.stderr)
        return None
    return first


def cli_passwd(args) -> int:
    from bot.config import load_settings

    settings = load_settings()
    password = read_password()
    if password is None:
        return 1
    if len(password) < MIN_LENGTH:
        print(f"密码至少 {MIN_LENGTH} 位", file=sys.stderr)
        return 1
    return asyncio.run(set_password(settings, args.staff_id, password))


async def set_password(settings, staff_uid: str, password: str) -> int:
    """Stores the hash for every staff row with this 微信ID (one person, possibly on two channels)."""
    from storage.db import Database
    from storage.models import AuditEvent, Staff
    from storage.roster import SchemaMissing, ensure_schema

    db = Database(settings.database_url)
    try:
        await ensure_schema(db)
        hashed = hash_password(password)
        async with db.session() as s:
            staff = (await s.scalars(select(Staff).where(Staff.channel_user_id == staff_uid))).all()
            if not staff:
                print(f"没有微信ID为 {staff_uid!r} 的工作人员", file=sys.stderr)
                return 1
            now = datetime.now(settings.tz)
            for st in staff:
                st.password_hash = hashed
                s.add(AuditEvent(at=now, staff_id=st.id, action="passwd", target=staff_uid[:100],
                                 detail={"by": "cli"}))
    except SchemaMissing as exc:
        print(str(exc), file=sys.stderr)
        return 2
    finally:
        await db.dispose()
    print(f"已为 {staff_uid} 设置密码")
    return 0
