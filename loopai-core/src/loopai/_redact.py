"""How configuration values appear when printed: secrets, and credentials in URLs, never do."""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import unquote

from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic.fields import FieldInfo

__all__ = [
    "MASK",
    "REDACTED",
    "SECRET_KEY",
    "EnvValue",
    "field_of",
    "holds_secret",
    "is_secret_env",
    "mask_url",
    "redact",
    "submodel_of",
]

SECRET_KEY: Final = re.compile(r"secret|token|passw|api_?key|private|credential|auth|signing|webhook_?url", re.I)
"""Setting names whose values are never echoed in messages and are redacted when shown."""

REDACTED: Final = "**********"

_SECRET_QUERY: Final = re.compile(r"token|key|secret|sig|passw|auth|credential", re.I)
"""Query parameters whose values :func:`mask_url` hides: ``password`` and ``sslpassword`` (libpq's),
``token``, ``apiKey``, ``X-Amz-Signature``... (``sslkey``, a path, too: shown as ``***`` all the same)."""
_URL: Final = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://).*", re.S)
_NO_FRAGMENT: Final = ("postgresql://", "postgres://")
"""Schemes whose URLs have no fragment (libpq reads a ``#`` as part of a value): there the
masked value of a parameter runs to the next ``&``."""
_AUTHORITY: Final = re.compile(r"[^/?#]*")
_PG_AUTHORITY: Final = re.compile(r"[^/?]*")
MASK: Final = "***"
"""What a masked part of a URL (a password, a secret query value) is shown as."""


class EnvValue(str):
    """A configuration string made from ``${VAR}`` references (``variables``, in order).

    ``whole`` is True when the string was exactly one reference, so that it may feed a
    boolean or number field. A value whose variable's name looks secret is never shown.
    """

    variables: tuple[str, ...]
    whole: bool

    def __new__(cls, text: str, variables: tuple[str, ...] = (), whole: bool = False) -> EnvValue:
        value = super().__new__(cls, text)
        value.variables = variables
        value.whole = whole
        return value


def is_secret_env(value: Any) -> bool:
    """Whether ``value`` was read from a ``${VAR}`` whose name looks secret."""
    return isinstance(value, EnvValue) and any(SECRET_KEY.search(name) for name in value.variables)


def redact(value: Any, *, key: str = "", model: type[BaseModel] | None = None) -> Any:
    """A copy of ``value`` safe to print; hidden values become ``**********``.

    Hidden: ``SecretStr``/``SecretBytes`` values, non-empty strings under a key that looks
    secret (``api_token``, ``password``...), values of fields declared ``SecretStr`` in
    ``model`` (the settings model of ``value``, when known; a pydantic model value is its
    own), and strings read from a ``${VAR}`` whose name looks secret. In URLs the
    password (``https://user:***@host``) and query parameters named like a token, key,
    secret, signature or password become ``***``.
    """
    if isinstance(value, (SecretStr, SecretBytes)):
        return REDACTED
    if isinstance(value, (str, bytes)):
        if value and ((key and SECRET_KEY.search(key)) or is_secret_env(value)):
            return REDACTED
        return mask_url(value) if isinstance(value, str) else value
    if isinstance(value, BaseModel):
        model, value = type(value), {name: getattr(value, name) for name in type(value).model_fields}
    if isinstance(value, Mapping):
        return {k: _redact_item(str(k), v, model) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v, key=key, model=model) for v in value]
    return value


def _redact_item(key: str, value: Any, model: type[BaseModel] | None) -> Any:
    field = field_of(model, key) if model is not None else None
    if field is None:
        return redact(value, key=key)
    if holds_secret(field.annotation) and value is not None and value != "":
        return REDACTED
    return redact(value, key=key, model=submodel_of(field.annotation))


def mask_url(text: str) -> str:
    """``text`` with the credentials of a URL masked, the one way loopai shows a URL (``config show``,
    ``loopai events where``, every message naming a database): the password of its userinfo
    (``postgresql://app:***@db/x``) and the values of query parameters named like a password,
    token, key, secret or signature (``?password=***``, ``?sslpassword=***``, ``?token=***``), a
    name read as libpq reads it (``%XX`` decoded). Text that is not a URL is returned as it is.

    Either is read as liberally as any reader of the URL may: the userinfo runs to the last ``@``
    before the first ``/`` (so a password holding a ``?`` or ``#`` is masked whole), and a
    ``postgresql://`` URL has no fragment (libpq reads a ``#`` as part of a value).
    """
    match = _URL.fullmatch(text)
    if match is None:
        return text
    start = match.end("scheme")
    spans: list[tuple[int, int]] = []
    head = text[start:].split("/", 1)[0]
    userinfo, at, _ = head.rpartition("@")
    if at and ":" in userinfo:
        spans.append((start + userinfo.index(":") + 1, start + len(userinfo)))
    fragments = not text.lower().startswith(_NO_FRAGMENT)
    authority = (_AUTHORITY if fragments else _PG_AUTHORITY).match(text, start)
    query = text.find("?", authority.end() if authority else start)
    if query >= 0:
        end = text.find("#", query) if fragments else -1
        position = query + 1
        for param in text[position : end if end >= 0 else len(text)].split("&"):
            name, equals, value = param.partition("=")
            if equals and value and _SECRET_QUERY.search(unquote(name)):
                spans.append((position + len(name) + 1, position + len(param)))
            position += len(param) + 1
    merged: list[tuple[int, int]] = []
    for begin, end in sorted(spans):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    pieces, last = [], 0
    for begin, end in merged:
        pieces += [text[last:begin], MASK]
        last = end
    return "".join([*pieces, text[last:]])


def field_of(model: type[BaseModel], key: str) -> FieldInfo | None:
    """The field ``key`` names: by name, alias or a spelling of the name (``SamplingRate``)."""
    folded = key.replace("_", "").replace("-", "").lower()
    for name, info in model.model_fields.items():
        if key in (name, info.alias) or folded == name.replace("_", "").lower():
            return info
    return None


def _is_class(annotation: Any, base: type | tuple[type, ...]) -> bool:
    return typing.get_origin(annotation) is None and isinstance(annotation, type) and issubclass(annotation, base)


def holds_secret(annotation: Any) -> bool:
    if _is_class(annotation, (SecretStr, SecretBytes)):
        return True
    return any(holds_secret(arg) for arg in typing.get_args(annotation))


def submodel_of(annotation: Any) -> type[BaseModel] | None:
    if _is_class(annotation, BaseModel):
        return annotation  # type: ignore[no-any-return]
    return next((found for arg in typing.get_args(annotation) if (found := submodel_of(arg)) is not None), None)
