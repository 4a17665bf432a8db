"""Reading a stored event back: an event this version cannot read is set aside, with the reason."""

from __future__ import annotations

from pydantic import ValidationError

from loopai._models import WebhookEvent

__all__ = ["read_event"]

_LONGEST: int = 200
"""Characters of the reason kept in the quarantined row."""


def read_event(body: str | bytes) -> WebhookEvent | str:
    """The event stored as ``body``, or why it cannot be read back, in one line (for ``quarantine``)."""
    try:
        return WebhookEvent.model_validate_json(body)
    except (ValidationError, ValueError, TypeError) as exc:
        return _unreadable(exc)


def _unreadable(exc: Exception) -> str:
    what = "the stored event cannot be read by this version of loopai, perhaps written by a newer one"
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        detail = f"{where}: {first['msg']}"
        if first["type"] == "json_invalid":
            what = "the stored event is not valid JSON (the row was damaged)"
    else:
        detail = str(exc)
    if len(detail) > _LONGEST:
        detail = detail[: _LONGEST - 3] + "..."
    return f"{what} ({detail}); it is never delivered"
