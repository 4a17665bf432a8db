"""Webhook signatures: Standard Webhooks (``webhook-signature``) and Loopai's ``X-Loopai-Signature``."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

__all__ = ["loopai_signature", "signing_key", "standard_signature"]

_PREFIX = "whsec_"


def signing_key(secret: str) -> bytes:
    """The HMAC key for ``secret``: the decoded bytes of ``whsec_<base64>``, else the UTF-8 text.

    Raises ValueError (without echoing the secret) when it is empty or a ``whsec_``
    secret whose rest is not base64.
    """
    if secret.startswith(_PREFIX):
        encoded = secret[len(_PREFIX) :]
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the secret starts with 'whsec_' but the rest is not valid base64") from None
    else:
        key = secret.encode("utf-8")
    if not key:
        raise ValueError("the secret is empty")
    return key


def standard_signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``."""
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def loopai_signature(key: bytes, body: bytes) -> str:
    """The ``X-Loopai-Signature`` value: ``sha256=<hex HMAC-SHA256 of the body>``."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
