"""WeCom's callback cryptography, shared by the app and the AI bot: the SHA1 msg_signature (checked
in constant time), AES-256-CBC decryption of an `Encrypt` value, and the URL verification both do.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from typing import Any

from bot.channels.base import BadRequest, check_fresh


def wecom_signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """WeCom's msg_signature: SHA1 of the four values sorted and joined."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode()).hexdigest()


def check_wecom_signature(token: str, signature: str | None, timestamp: str, nonce: str, encrypt: str) -> None:
    expected = wecom_signature(token, timestamp, nonce, encrypt)
    # Constant-time: wechatpy compares with ==.
    if not signature or not hmac.compare_digest(expected.encode(), signature.encode()):
        raise BadRequest(403, "bad signature")


def wecom_decrypt(key_b64: str, encrypt: str, receive_ids: tuple[str, ...]) -> str:
    """Decrypts a WeCom `Encrypt` value (AES-256-CBC, PKCS#7, random(16) + len + msg + receiveid).

    The trailing receive id must be one of `receive_ids`: the corp id for an app; for a company's
    own AI bot WeCom documents "" — accepting the corp id as well costs no safety (the signature
    already proved the sender) and survives WeCom filling it in.
    """
    import base64
    import socket
    import struct

    try:
        plain = _cipher(key_b64).decrypt(base64.b64decode(encrypt))
        pad = plain[-1]
        if not 1 <= pad <= 32:
            raise ValueError("bad padding")
        content = plain[16:-pad]
        n = socket.ntohl(struct.unpack(b"I", content[:4])[0])
        msg = content[4:4 + n].decode("utf-8")
        from_id = content[4 + n:].decode("utf-8")
    except (ValueError, IndexError, struct.error, UnicodeDecodeError) as exc:
        raise BadRequest(400, "cannot decrypt") from exc
    if from_id not in receive_ids:
        raise BadRequest(403, "wrong receive id")
    return msg


@functools.lru_cache(maxsize=16)
def _cipher(key_b64: str) -> Any:
    """wechatpy's AES-CBC cipher for an EncodingAESKey, built once (it is stateless per call)."""
    import base64

    from wechatpy.crypto.base import WeChatCipher

    return WeChatCipher(base64.b64decode(key_b64 + "="))


def verify_wecom_url(query: Any, token: str, aes_key: str, receive_ids: tuple[str, ...], now_ts: float) -> str:
    """WeCom's URL verification (GET with msg_signature, timestamp, nonce, echostr): the decrypted
    echostr, or BadRequest. The app and the AI bot verify the same way."""
    ts = query.get("timestamp", "")
    check_fresh(ts, now_ts)
    echostr = query.get("echostr", "")
    check_wecom_signature(token, query.get("msg_signature"), ts, query.get("nonce", ""), echostr)
    return wecom_decrypt(aes_key, echostr, receive_ids)
