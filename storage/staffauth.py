"""Staff dashboard passwords: Argon2id (argon2-cffi), with old scrypt hashes still accepted.

New hashes are argon2-cffi's PHC strings, `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`: OWASP's
recommended minimum for Argon2id (19 MiB of memory, 2 passes, 1 lane; about 0.1 s on one core),
chosen over argon2-cffi's heavier default (64 MiB, 4 lanes) so that a burst of logins on a small
server stays within memory; the login route checks at most a few at a time (bot/web/auth.py).
Hashes written before argon2 are `scrypt$n=16384,r=8,p=1$<salt, base64>$<hash, base64>`; they
still verify, and `needs_rehash` says so, so that a successful login replaces them with an
argon2 hash (bot/web/auth.py). The parameters travel with each hash, so they can be raised later
without breaking old passwords.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, tzinfo

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select

from storage.db import Database
from storage.models import AuditEvent, Staff

SCHEME = "argon2id"
SCRYPT = "scrypt"
TIME_COST, MEMORY_KIB, PARALLELISM = 2, 19456, 1
MIN_LENGTH = 8

_hasher = PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_KIB, parallelism=PARALLELISM)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def needs_rehash(stored: str | None) -> bool:
    """True for a scrypt hash, or an argon2 hash with other parameters than today's."""
    if not stored:
        return False
    if not stored.startswith("$argon2"):
        return True
    try:
        return _hasher.check_needs_rehash(stored)
    except (InvalidHashError, ValueError):
        return True


def verify_password(stored: str | None, password: str) -> bool:
    """True when `password` matches; a malformed or missing hash never matches."""
    if not stored:
        return False
    if stored.startswith("$argon2"):
        try:
            return _hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError, ValueError):
            return False
    return _verify_scrypt(stored, password)


def _verify_scrypt(stored: str, password: str) -> bool:
    try:
        scheme, params, salt_b64, digest_b64 = stored.split("$")
        if scheme != SCRYPT:
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
