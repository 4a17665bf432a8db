"""The limits of a request body read whole: at most ``[serve] max_body_mb`` (413 beyond), and, once
the service stops taking work at shutdown, no more waiting for it (503).

A declared ``Content-Length`` over the limit is refused before anything is read; a chunked body
is counted as it arrives and refused when it crosses the limit. A body still arriving when the
service stops taking work (see :meth:`Service.shutting_down`) is cut off with 503 ``NOT_READY``,
which says to send the request to another instance: nothing of it was done, and the server must
answer before its shutdown timeout (past it, uvicorn cancels the request: a 500 and a traceback).
The one exception is an NDJSON upload to ``batch/run``: it streams item by item, never whole, so
only each line is bounded (by the batch reader), and at shutdown the batch answers the items that
came (see :mod:`._batch`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from loopai.serve._errors import ApiError, error_response, trace_id_of
from loopai.serve._gate import header
from loopai.serve._media import STREAMED_UPLOADS, is_ndjson
from loopai.serve._service import Service

__all__ = ["BodyLimit"]


def _too_large(limit: int) -> ApiError:
    megabytes = limit / (1024 * 1024)
    size = f"{megabytes:,.4g} MB" if megabytes >= 0.1 else f"{limit:,} bytes"
    return ApiError(413, "PAYLOAD_TOO_LARGE", f"the request body is larger than {size} (max_body_mb)")


class BodyLimit:
    """ASGI middleware enforcing ``limit`` bytes on request bodies, and ``service``'s stop (see the module)."""

    def __init__(self, app: Any, limit: int, service: Service) -> None:
        self.app = app
        self.limit = limit
        self.service = service

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self._streamed(scope):
            await self.app(scope, receive, send)
            return
        declared = header(scope, b"content-length")
        if declared is None or not declared.isdigit():
            await self.app(scope, _reading(receive, self.limit, self.service), send)  # chunked: count as it arrives
        elif int(declared) > self.limit:
            error = _too_large(self.limit)
            trace_id = trace_id_of({"x-request-id": header(scope, b"x-request-id") or ""})
            await error_response(413, error.code, error.message, trace_id=trace_id)(scope, receive, send)
        else:
            await self.app(scope, _reading(receive, None, self.service), send)  # the server reads no more than declared

    @staticmethod
    def _streamed(scope: dict[str, Any]) -> bool:
        return scope["path"] in STREAMED_UPLOADS and is_ndjson(header(scope, b"content-type") or "")


def _reading(receive: Any, limit: int | None, service: Service) -> Any:
    """``receive`` for a body read whole: counted against ``limit`` (None: not counted), cut off when
    the service stops taking work; as it is once the body has come."""
    seen = 0
    whole = False

    async def read() -> dict[str, Any]:
        nonlocal seen, whole
        if whole:  # after the body: a disconnect, which a streamed answer listens for
            after: dict[str, Any] = await receive()
            return after
        message: dict[str, Any] = await _unless_cut_off(receive, service)
        if message["type"] == "http.request":
            whole = not message.get("more_body", False)
            if limit is not None:
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _too_large(limit)
        else:
            whole = True
        return message

    return read


async def _unless_cut_off(receive: Any, service: Service) -> Any:
    """The next part of a body, unless the service stops taking work first (503, see the module). A
    plain wait, registered in ``service.reading``: the service cancels it when it stops taking work,
    and the cancellation becomes the refusal here, before anything else sees it."""
    if service.stop_taking.is_set():
        raise service.not_ready()
    task = asyncio.current_task()
    if task is None:  # pragma: no cover - an ASGI server runs each request in a task
        return await receive()
    service.reading.add(task)
    try:
        return await receive()
    except asyncio.CancelledError:
        if not service.stop_taking.is_set():
            raise
        uncancel = getattr(task, "uncancel", None)  # Python 3.11+: the task is no longer being cancelled
        if uncancel is not None:
            uncancel()
        raise service.not_ready() from None
    finally:
        service.reading.discard(task)
