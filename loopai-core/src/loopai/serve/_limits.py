"""The request body limit: a body read whole may be at most ``[serve] max_body_mb`` (413 beyond).

A declared ``Content-Length`` over the limit is refused before anything is read; a chunked body
is counted as it arrives and refused when it crosses the limit. The one exception is an NDJSON
upload to ``batch/run``: it streams item by item, never whole, so only each line is bounded (by
the batch reader).
"""

from __future__ import annotations

from typing import Any

from loopai.serve._errors import ApiError, error_response, trace_id_of
from loopai.serve._gate import header
from loopai.serve._media import STREAMED_UPLOADS, is_ndjson

__all__ = ["BodyLimit"]


def _too_large(limit: int) -> ApiError:
    megabytes = limit / (1024 * 1024)
    size = f"{megabytes:,.4g} MB" if megabytes >= 0.1 else f"{limit:,} bytes"
    return ApiError(413, "PAYLOAD_TOO_LARGE", f"the request body is larger than {size} (max_body_mb)")


class BodyLimit:
    """ASGI middleware enforcing ``limit`` bytes on request bodies."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self._streamed(scope):
            await self.app(scope, receive, send)
            return
        declared = header(scope, b"content-length")
        if declared is None or not declared.isdigit():
            await self.app(scope, _counting(receive, self.limit), send)  # chunked: count as it arrives
        elif int(declared) > self.limit:
            error = _too_large(self.limit)
            trace_id = trace_id_of({"x-request-id": header(scope, b"x-request-id") or ""})
            await error_response(413, error.code, error.message, trace_id=trace_id)(scope, receive, send)
        else:
            await self.app(scope, receive, send)  # the server reads no more than the declared length

    @staticmethod
    def _streamed(scope: dict[str, Any]) -> bool:
        return scope["path"] in STREAMED_UPLOADS and is_ndjson(header(scope, b"content-type") or "")


def _counting(receive: Any, limit: int) -> Any:
    seen = 0

    async def counted() -> dict[str, Any]:
        nonlocal seen
        message: dict[str, Any] = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _too_large(limit)
        return message

    return counted
