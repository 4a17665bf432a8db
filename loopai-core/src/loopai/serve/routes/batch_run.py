"""``POST /api/v1/batch/run``: what ``loopai run`` does per record, over a batch, as JSON or as a stream.

The body is a JSON document (``BatchRunRequest``, at most ``max_batch_items`` items) or, with
``Content-Type: application/x-ndjson``, one item per line, read as it arrives (any number of
items; ``max_concurrency`` and ``stop_on_first_error`` are then query parameters; for a JSON body
they are its fields, the query's used only for a field the body leaves out). ``Accept:
text/event-stream`` streams the answer as Server-Sent Events.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Query, Request
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from loopai._wire import DEFAULT_CONCURRENCY, MAX_CONCURRENCY, BatchRunRequest, BatchRunResponse, ErrorBody
from loopai.serve._answers import ERRORS
from loopai.serve._batch import BatchRun
from loopai.serve._batch_input import ItemSource, ListSource, NdjsonSource
from loopai.serve._batch_output import JsonFormat, SseFormat, encoded
from loopai.serve._deps import Authenticated, ServiceDep, json_document, validated, within_batch_limit
from loopai.serve._errors import ApiError
from loopai.serve._media import is_ndjson
from loopai.serve._openapi import request_body
from loopai.serve._service import Service
from loopai.serve._upload import Upload, held_until

__all__ = ["router"]

_STREAM: Final = "text/event-stream"


async def batch_run(
    request: Request,
    service: ServiceDep,
    caller: Authenticated,
    max_concurrency: Annotated[
        int | None,
        Query(
            description=f"items in flight, 1..{MAX_CONCURRENCY} (default {DEFAULT_CONCURRENCY}); "
            "outside: 400 INVALID_CONCURRENCY",
            json_schema_extra={"minimum": 1, "maximum": MAX_CONCURRENCY},
        ),
    ] = None,
    stop_on_first_error: Annotated[bool | None, Query(description="stop taking items at the first failed one")] = None,
) -> Response:
    """Per-item results (the fields of ``loopai run``'s output lines, with the item's ``id``) and a summary."""
    content_type = request.headers.get("content-type", "application/json")
    source: ItemSource
    upload: Upload | None = None
    if is_ndjson(content_type):
        concurrency = _concurrency(DEFAULT_CONCURRENCY if max_concurrency is None else max_concurrency)
        upload = Upload(request.stream())
        source = NdjsonSource(upload, service.max_body_bytes)
        stop = bool(stop_on_first_error)
    elif _is_json(content_type):
        body = await _json_body(request, service)
        given = body.model_fields_set
        concurrency = _concurrency(
            body.max_concurrency if "max_concurrency" in given or max_concurrency is None else max_concurrency
        )
        stop = body.stop_on_first_error if "stop_on_first_error" in given else bool(stop_on_first_error)
        source = ListSource(body.items)
    else:
        sent = content_type.split(";", 1)[0].strip() or "no Content-Type"
        raise ApiError(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            f"got {sent}: send application/json or application/x-ndjson (one item a line)",
        )
    run = BatchRun(service, source, concurrency, stop)
    streaming = _STREAM in request.headers.get("accept", "")
    chunks = encoded(run, SseFormat() if streaming else JsonFormat(run.batch_id))
    done = None
    if upload is not None:  # answered once the upload has ended (the client reads only then), or the batch (shutdown)
        chunks = await held_until(chunks, upload.finished)
        done = BackgroundTask(upload.close)
    headers = {"X-Batch-Id": str(run.batch_id)}
    if streaming:
        return EventSourceResponse(
            chunks,
            headers=headers,
            sep="\n",
            shutdown_grace_period=service.settings.shutdown_timeout,
            background=done,
        )
    return StreamingResponse(chunks, headers=headers, media_type="application/json", background=done)


def _is_json(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


def _concurrency(value: int) -> int:
    if not 1 <= value <= MAX_CONCURRENCY:
        raise ApiError(
            400,
            "INVALID_CONCURRENCY",
            f"max_concurrency must be between 1 and {MAX_CONCURRENCY} (got {value})",
            details={"max_concurrency": value, "minimum": 1, "maximum": MAX_CONCURRENCY},
        )
    return value


async def _json_body(request: Request, service: Service) -> BatchRunRequest:
    """The JSON body, checked in the order a caller can act on: JSON at all (422), not too many items
    (413), a concurrency in range (400), then every field (422)."""
    document = json_document(await request.body())
    within_batch_limit(document, service.settings.max_batch_items, "stream them as application/x-ndjson instead")
    if isinstance(document, dict):
        concurrency = document.get("max_concurrency")
        if isinstance(concurrency, int) and not isinstance(concurrency, bool):
            _concurrency(concurrency)
    return validated(BatchRunRequest, document)


def router() -> APIRouter:
    """The batch run route."""
    routes = APIRouter(tags=["batch"])
    routes.add_api_route(
        "/api/v1/batch/run",
        batch_run,
        methods=["POST"],
        response_model=BatchRunResponse,
        responses={
            **ERRORS,
            200: {
                "description": "The results and the summary; with Accept: text/event-stream, as events",
                "content": {
                    _STREAM: {
                        "schema": {"type": "string"},
                        "example": 'id: 1\nevent: result\ndata: {"id":"a","line":1,...}\n\n',
                    }
                },
            },
            400: {"model": ErrorBody, "description": "max_concurrency outside 1..100 (INVALID_CONCURRENCY)"},
            415: {"model": ErrorBody, "description": "Neither JSON nor NDJSON"},
        },
        openapi_extra=request_body(BatchRunRequest, ndjson=True),
    )
    return routes
