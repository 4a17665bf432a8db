"""Who may call the service: API keys compared in constant time, and where it may listen without them.

Keys come from ``LOOPAI_API_KEYS`` (comma-separated) when it is set, else from ``[serve] api_keys``.
A caller presents one as ``Authorization: Bearer <key>`` or ``X-Api-Key: <key>``. Only a digest of
each key is kept; a caller is known by the fingerprint of the key it presented (the first 8 hex
digits of its SHA-256), which is what logs may show.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from loopai.config import ServeSettings

__all__ = ["ANONYMOUS", "ApiKeys", "Caller", "insecure_binding", "is_loopback"]

_NO_KEY: Final = b"\0" * 32


@dataclass(frozen=True)
class Caller:
    """The identity a request was authenticated as: its key's fingerprint, or ``anonymous`` when
    the service runs without keys."""

    key: str


ANONYMOUS: Final = Caller("anonymous")


class ApiKeys:
    """The keys the service accepts; :meth:`match` tells which one a caller presented."""

    def __init__(self, keys: Iterable[str]) -> None:
        digests = [hashlib.sha256(key.encode("utf-8")).digest() for key in keys if key]
        self._keys = [(digest, digest.hex()[:8]) for digest in digests]

    @classmethod
    def resolve(cls, settings: ServeSettings, environ: Mapping[str, str]) -> ApiKeys:
        """``LOOPAI_API_KEYS`` when set (the environment wins, as for every loopai setting), else
        the configuration's ``api_keys``."""
        listed = environ.get("LOOPAI_API_KEYS", "")
        if listed.strip():
            return cls(key.strip() for key in listed.split(",") if key.strip())
        return cls(key.get_secret_value() for key in settings.api_keys)

    @property
    def required(self) -> bool:
        """Whether any key is configured (then every protected route needs one)."""
        return bool(self._keys)

    def match(self, presented: str | None) -> Caller | None:
        """The caller ``presented`` authenticates, or None.

        Every key is compared, whichever matches, with :func:`hmac.compare_digest` on digests
        of equal length: the time taken says nothing about the keys.
        """
        given = hashlib.sha256(presented.encode("utf-8")).digest() if presented else _NO_KEY
        found: Caller | None = None
        for digest, fingerprint in self._keys:
            if hmac.compare_digest(given, digest) and found is None:
                found = Caller(fingerprint)
        return found if presented else None

    def authenticate(self, authorization: str | None, api_key: str | None) -> Caller | None:
        """The caller of a request with these ``Authorization`` (``Bearer <key>``) and ``X-Api-Key``
        headers, or None when neither holds a known key."""
        scheme, _, token = (authorization or "").partition(" ")
        bearer = token.strip() if scheme.lower() == "bearer" else None
        by_bearer = self.match(bearer)
        by_header = self.match(api_key)
        return by_bearer or by_header


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``127.0.0.0/8``, ``::1``) or ``localhost``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def insecure_binding(host: str, keys: ApiKeys, *, allowed: bool) -> str | None:
    """Why the service must not listen on ``host``, or None: without keys only loopback is safe,
    unless ``allowed`` (``--insecure-no-auth``)."""
    if keys.required or allowed or is_loopback(host):
        return None
    return (
        f"refusing to listen on {host} without API keys: anyone who can reach it could call it. "
        "Set [serve] api_keys (or LOOPAI_API_KEYS), listen on 127.0.0.1, or pass --insecure-no-auth"
    )
