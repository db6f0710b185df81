"""Staff passwords: scrypt hashes that verify, resist tampering, and are stored with an audit row."""

from __future__ import annotations

import io

from sqlalchemy import select

from bot.cli import read_password
from bot.config import Settings
from storage.models import AuditEvent, Staff
from storage.staffauth import hash_password, set_password, verify_password


def test_hash_verifies_and_is_salted():
    h = hash_password("门口值班2026")
    assert h.startswith("scrypt$n=16384,r=8,p=1$")
    assert verify_password(h, "门口值班2026")
    assert not verify_password(h, "门口值班2025")
    assert not verify_password(h, "")
    assert hash_password("门口值班2026") != h  # a new salt every time


def test_malformed_or_tampered_hashes_never_match():
    good = hash_password("secret-pass")
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
