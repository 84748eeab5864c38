"""canal's MySQL-4.1-style password scramble (client token and server check).

client: ``token = SHA1(pw) XOR SHA1(seed + SHA1(SHA1(pw)))``, sent as lower-case hex.
server: ``canal.passwd`` holds hex ``SHA1(SHA1(pw))``; ``cand = token XOR SHA1(seed + stored)``
is accepted when ``SHA1(cand) == stored``.
"""

from __future__ import annotations

import hashlib
import hmac


def _sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def stored_hash(password: str) -> str:
    """The value to put in ``canal.passwd``: hex SHA1(SHA1(pw)) (MySQL PASSWORD() without ``*``)."""
    return _sha1(_sha1(password.encode())).hex()


def client_token(password: str, seed: bytes) -> str:
    """The hex token a client sends for ``password`` and the server's handshake ``seed``."""
    if not password:
        return ""
    stage1 = _sha1(password.encode())
    return _xor(stage1, _sha1(seed + _sha1(stage1))).hex()


def check_token(token: str, seed: bytes, stored: str) -> bool:
    """Server side: does the hex ``token`` prove knowledge of the password behind ``stored``?"""
    try:
        tok = bytes.fromhex(token)
        want = bytes.fromhex(stored)
    except ValueError:
        return False
    if len(tok) != 20 or len(want) != 20:
        return False
    candidate = _xor(tok, _sha1(seed + want))
    return hmac.compare_digest(_sha1(candidate), want)


def authenticate(cfg_user: str, cfg_passwd: str, username: str, token: str, seed: bytes) -> bool:
    """canal's rule: user empty or equal, and passwd empty (anything passes) or the scramble checks."""
    if cfg_user and cfg_user != username:
        return False
    if not cfg_passwd:
        return True
    return bool(token) and check_token(token, seed, cfg_passwd)
