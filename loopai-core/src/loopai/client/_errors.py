"""The one exception the client raises: what the service answered (its ``code``), or why it could not."""

from __future__ import annotations

from typing import Any

__all__ = ["LoopaiAPIError"]


class LoopaiAPIError(Exception):
    """A call that did not succeed.

    ``code`` is the service's (``UNAUTHORIZED``, ``VALIDATION_ERROR``, ``BATCH_TOO_LARGE``,
    ``INVALID_CONCURRENCY``, ``NOT_READY``...), or the client's own when there was no answer:
    ``CONNECTION_FAILED`` (after the retries), ``INVALID_RESPONSE`` (not what the service sends),
    ``STREAM_INTERRUPTED`` (a stream ended before its ``done`` event, or its connection was cut: the
    message says after how many results), ``INVALID_REQUEST`` (what
    the client cannot send: a URL without a scheme, an event dict that is not an event, a batch
    item that is not JSON, a value JSON cannot carry, such as a NaN, with its field in ``details``).
    ``status`` is the HTTP status (None without an answer); ``trace_id``
    is in the service's log line about the request.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        details: dict[str, Any] | None = None,
        trace_id: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}" if status is None else f"{status} {code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.details = details
        self.trace_id = trace_id
