"""What a handler's messages may show: a URL without its credentials, a receiver's answer on one
safe line, and none of the handler's secrets, however the receiver echoes them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, unquote, unquote_plus, urlsplit

__all__ = ["basic_token_forms", "excerpt", "scrub", "shown_url", "url_secrets"]

_REDACTED = "**********"
_SHORTEST_HIDDEN = 4  # a query value shorter than this is blanked only after its name ("v=1"): no secret
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""What a receiver's text may not bring into a message: the control characters (C0 but the tab and
line breaks, which become spaces; DEL; C1), which a terminal obeys (ESC starts a sequence that moves
the cursor, erases lines, retitles the window; BEL rings), and the bidirectional formatting
characters, which reorder what follows them (U+202E shows ``txt.exe`` as ``exe.txt``)."""


def shown_url(url: str, *, keep_path: bool = True) -> str:
    """``url`` safe to print: no user, password, query or fragment (and no path unless ``keep_path``)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    if ":" in host:
        host = f"[{host}]"
    if not keep_path:
        return (
            f"{parts.scheme}://{host}{port}/..." if parts.path not in ("", "/") else f"{parts.scheme}://{host}{port}/"
        )
    return f"{parts.scheme}://{host}{port}{parts.path}" + ("?..." if parts.query else "")


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty string of ``secrets`` blanked out, longest first (a URL
    before the path it contains, so that no part of either survives), also as JSON may
    escape it (``\\/`` for ``/``). A percent-escape in a secret (``%3D``) is blanked in either
    case (``%3d`` too): a receiver may encode what it echoes with lowercase hex digits."""
    forms = {form for secret in secrets if secret for form in (secret, secret.replace("/", "\\/"))}
    for secret in sorted(forms, key=len, reverse=True):
        if _ESCAPE.search(secret):
            text = _escapes_in_any_case(secret).sub(_REDACTED, text)
        else:
            text = text.replace(secret, _REDACTED)
    return text


_ESCAPE = re.compile("(%[0-9A-Fa-f]{2})")


def _escapes_in_any_case(secret: str) -> re.Pattern[str]:
    """A pattern matching ``secret`` exactly but for its percent-escapes, whose hex digits match in either case."""
    parts = _ESCAPE.split(secret)  # text, escape, text, escape... text
    return re.compile("".join(f"(?i:{re.escape(part)})" if i % 2 else re.escape(part) for i, part in enumerate(parts)))


def basic_token_forms(token: str) -> list[str]:
    """The Basic token (base64 of ``user:password``) as a receiver could echo it: as sent,
    without its ``=`` padding, and each percent-encoded (``YWxpY2U6czNjcmV0%3D``)."""
    bare = token.rstrip("=")
    return [token, f"Basic {token}", bare, quote(token, safe=""), quote(bare, safe="")]


def excerpt(text: str, limit: int) -> str:
    """``text`` safe to print, clipped to ``limit`` characters: one line (a receiver must not forge
    lines in logs or in ``events list``), and every character of :data:`_UNSAFE` written as its
    escape, ``\\x1b`` or ``\\u202e`` (replaced, not dropped: what it stood between stays apart,
    a secret cut in two by one included)."""
    text = " ".join(_UNSAFE.sub(_escaped, text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escaped(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def url_secrets(url: str) -> list[str]:
    """What a receiver could echo of ``url`` that must not be shown: its password (as written,
    decoded, and percent-encoded whole, ``quote(password, safe="")``) and, when it has a query,
    the query whole, each ``name=value`` item and each value (as written and decoded; a value
    shorter than 4 characters only with its name: blanking every ``1`` of a message would garble
    it, and so short a value is no secret)."""
    try:
        parts = urlsplit(url)
        password = parts.password or ""
    except ValueError:
        return []
    found = [password, unquote(password), quote(unquote(password), safe="")]
    if parts.query:
        found += [parts.query, unquote_plus(parts.query)]
        for item in parts.query.split("&"):
            name, equals, value = item.partition("=")
            value = value if equals else name
            found += [item, unquote_plus(item)]
            if len(unquote_plus(value)) >= _SHORTEST_HIDDEN:
                found += [value, unquote_plus(value)]
    return [text for text in found if text]
