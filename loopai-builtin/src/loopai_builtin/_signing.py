"""Webhook signatures: Standard Webhooks (``webhook-signature``) and Loopai's ``X-Loopai-Signature``.

The two are keyed differently, each as its verifiers expect. Standard Webhooks libraries
(Python, JavaScript, Go...) base64-decode the secret, ``whsec_`` prefix or not, so a secret
that is base64 is used as its decoded bytes. Upstream Loopai keys ``X-Loopai-Signature``
with the secret's UTF-8 text, whatever it looks like.

While a secret is rotated, ``webhook-signature`` carries one signature per key, space-separated,
as the Standard Webhooks specification has it: a receiver holding any one of the secrets verifies.
``X-Loopai-Signature`` is one value, as upstream's verifiers compare it whole.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable

__all__ = ["loopai_signature", "plain_text_warning", "standard_key", "standard_signature", "standard_signatures"]

_PREFIX = "whsec_"


def _decoded(text: str) -> bytes | None:
    """``text`` decoded as strict base64 (alphabet and padding), or None when it is not base64."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def standard_key(secret: str) -> bytes:
    """The Standard Webhooks HMAC key for ``secret``, as the reference libraries derive it.

    ``whsec_<base64>``: the decoded rest (missing padding tolerated). Otherwise a secret that
    is strict base64 is decoded too (``Webhook(secret)`` verifies); any other text is used
    as its UTF-8 bytes (then only ``Webhook(secret.encode())`` verifies: see
    :func:`plain_text_warning`). Raises ValueError, without echoing the secret, when it is
    empty or starts with ``whsec_`` and the rest is not base64.
    """
    if secret.startswith(_PREFIX):
        encoded = secret[len(_PREFIX) :]
        key = _decoded(encoded + "=" * (-len(encoded) % 4))
        if key is None:
            raise ValueError("the secret starts with 'whsec_' but the rest is not valid base64")
    else:
        key = _decoded(secret) or secret.encode("utf-8")
    if not key:
        raise ValueError("the secret is empty")
    return key


def plain_text_warning(secret: str) -> str | None:
    """What a receiver must know when ``secret`` is used as text (neither ``whsec_`` nor base64), else None."""
    if secret.startswith(_PREFIX) or _decoded(secret):
        return None
    return (
        "the secret is not base64 (nor whsec_<base64>), so webhook-signature is keyed by its UTF-8 bytes: "
        "Standard Webhooks libraries verify it only when given those bytes, Webhook(secret.encode()); "
        "use a whsec_<base64> secret for Webhook(secret) to work"
    )


def standard_signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``."""
    return standard_signatures((key,), message_id, timestamp, body)


def standard_signatures(keys: Iterable[bytes], message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for several keys (a secret being rotated): one ``v1,<base64>``
    per key, in the order given, separated by spaces, as the Standard Webhooks specification writes
    them; a receiver holding any one of the keys verifies."""
    message = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode("ascii") for key in keys
    )


def loopai_signature(secret: str, body: bytes) -> str:
    """The ``X-Loopai-Signature`` value, as upstream Loopai computes it: ``sha256=<hex HMAC-SHA256
    of the body>`` keyed by the configured secret's UTF-8 text (a ``whsec_`` prefix included)."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
