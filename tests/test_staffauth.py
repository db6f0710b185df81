"""Staff passwords: argon2id hashes (old scrypt ones still verify) that resist tampering, stored with an
audit row."""

from __future__ import annotations

import io

from sqlalchemy import select

from bot.cli import read_password
from bot.config import Settings
from storage.models import AuditEvent, Staff
from storage.staffauth import hash_password, needs_rehash, set_password, verify_password


def test_hash_verifies_and_is_salted():
    h = hash_password("门口值班2026")
    assert h.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert not needs_rehash(h)
    assert verify_password(h, "门口值班2026")
    assert not verify_password(h, "门口值班2025")
    assert not verify_password(h, "")
    assert hash_password("门口值班2026") != h  # a new salt every time


def test_an_old_scrypt_hash_verifies_and_needs_a_rehash():
    from tests.test_logins import old_scrypt_hash

    old = old_scrypt_hash("门口值班2026")
    assert verify_password(old, "门口值班2026") and not verify_password(old, "门口值班2025")
    assert needs_rehash(old)


def test_malformed_or_tampered_hashes_never_match():
    good = hash_password("secret-pass")
    parts = good.split("$")
    for bad in (good[:-4] + "AAAA", good.replace("m=19456", "m=abc"), "$argon2id$garbage", "$argon2"):
        assert not verify_password(bad, "secret-pass"), bad
    from tests.test_logins import old_scrypt_hash

    good = old_scrypt_hash("secret-pass")
    assert parts[1] == "argon2id"
    scheme, params, salt, digest = good.split("$")
    for bad in (None, "", "plain", "md5$x$y$z", f"{scheme}$n=abc$salt$digest",
                f"{scheme}$n=16384,r=8,p=1${salt}$not-base64!!", f"{scheme}$n=1073741824,r=8,p=1${salt}${digest}",
                f"{scheme}$n=16384,r=8,p=1${salt}${digest[:-4]}AAA="):
        assert not verify_password(bad, "secret-pass"), bad


def test_password_from_a_pipe_is_the_first_line():
    pipe = io.StringIO("first line\nsecond line\n")
    assert read_password(pipe) == "first line"


async def test_set_password_stores_hash_and_audits(db):
    async with db.session() as s:
        s.add(Staff(name="张伟", role="网格员", channel="wecom", channel_user_id="zhangwei"))
    tz = Settings().tz
    assert await set_password(db, "zhangwei", "correct horse", tz=tz) is True
    assert await set_password(db, "nobody", "correct horse", tz=tz) is False
    async with db.session() as s:
        staff = await s.scalar(select(Staff).where(Staff.channel_user_id == "zhangwei"))
        assert verify_password(staff.password_hash, "correct horse")
        assert "correct horse" not in staff.password_hash
        audit = (await s.scalars(select(AuditEvent).where(AuditEvent.action == "passwd"))).all()
        assert [(a.staff_id, a.target) for a in audit] == [(staff.id, "zhangwei")]
