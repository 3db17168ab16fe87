"""GitHub's webhook signature: X-Hub-Signature-256 is ``sha256=`` + HMAC-SHA256(secret, body)."""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="


def sign(secret: bytes, body: bytes | bytearray | memoryview) -> str:
    """The X-Hub-Signature-256 value GitHub sends for ``body``."""
    return PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(
    secret: bytes, body: bytes | bytearray | memoryview, header: str | None
) -> bool:
    """True only when ``header`` is the signature of ``body`` under ``secret``.

    The comparison is constant-time so an attacker cannot learn the signature byte by byte.
    """
    if not secret or not header or not header.startswith(PREFIX):
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())
