"""Staff dashboard passwords: scrypt with a random salt, in a self-describing string.

    scrypt$n=16384,r=8,p=1$<salt, base64>$<hash, base64>

The parameters travel with the hash, so they can be raised later without breaking old passwords.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from datetime import datetime, tzinfo

from sqlalchemy import select

from storage.db import Database
from storage.models import AuditEvent, Staff

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


async def set_password(db: Database, staff_uid: str, password: str, *, tz: tzinfo) -> bool:
    """Stores the hash for every staff row with this 微信ID (one person, possibly on two channels),
    audited at the local time in `tz`; False when no staff member has that id.

    Raises `storage.roster.SchemaMissing` when `gridbot init` was not run."""
    from storage.roster import ensure_schema

    await ensure_schema(db)
    hashed = hash_password(password)
    async with db.session() as s:
        staff = (await s.scalars(select(Staff).where(Staff.channel_user_id == staff_uid))).all()
        if not staff:
            return False
        now = datetime.now(tz)
        for st in staff:
            st.password_hash = hashed
            s.add(AuditEvent(at=now, staff_id=st.id, action="passwd", target=staff_uid[:100],
                             detail={"by": "cli"}))
    return True
