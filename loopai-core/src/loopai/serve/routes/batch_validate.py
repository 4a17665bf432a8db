"""``POST /api/v1/batch/validate``: upstream Loopai's batch validation, over the task's schemas.

Each item is one output of the task's program: it is validated against the task's schemas (from
the tasks table) and its ``expected_output``, then counted in the task's rolling window, so that
the task's accuracy and latency thresholds apply; the validation and threshold events this raises
go to the handlers that take them (an item carries no run status: no ``program.execution.*``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Final

from fastapi import APIRouter, Request
from starlette.responses import Response

from loopai._models import ExecutionRecord, ValidationResult, WebhookEventType
from loopai._report import ValidationReport
from loopai._wire import BatchValidateItem, BatchValidateRequest, BatchValidateResponse, ErrorBody
from loopai.serve._answers import ERRORS, json_answer
from loopai.serve._deps import Authenticated, ServiceDep, json_document, validated, within_batch_limit
from loopai.serve._errors import ApiError
from loopai.serve._openapi import request_body

__all__ = ["router"]

NO_PROGRAM: Final = uuid.UUID(int=0)
"""The program id of a batch item: upstream's items name none."""
_RUN_STATUS: Final = frozenset(
    {
        WebhookEventType.PROGRAM_EXECUTION_COMPLETED,
        WebhookEventType.PROGRAM_EXECUTION_FAILED,
        WebhookEventType.PROGRAM_EXECUTION_TIMEOUT,
    }
)
_YIELD_EVERY: Final = 64
"""Items judged between two turns given to other requests (sync validators never yield)."""


async def batch_validate(request: Request, service: ServiceDep, caller: Authenticated) -> Response:
    """Every item's verdict in item order, and the batch's accuracy (404 ``TASK_NOT_FOUND`` for a task
    that is not in the tasks table: its schemas are what the items are judged against).

    More than ``[serve] max_batch_items`` items is 413 ``BATCH_TOO_LARGE``, told before the items are
    validated one by one."""
    document = json_document(await request.body())
    within_batch_limit(document, service.settings.max_batch_items, "send fewer in each request")
    body = validated(BatchValidateRequest, document)
    host = service.host
    task = host.tasks.view(body.task_id)
    if not task.configured:
        raise ApiError(404, "TASK_NOT_FOUND", f"task {body.task_id} is not in the service's tasks table")
    started = time.perf_counter()
    batch_id = uuid.uuid4()
    wanted = host.handled_events() - _RUN_STATUS
    results = []
    valid_count = 0
    for number, item in enumerate(body.items, 1):
        execution = ExecutionRecord(program_id=NO_PROGRAM, task_id=body.task_id, input=item.input, output=item.output)
        validation = await host.avalidate(execution, task.validation_context(item.expected_output))
        service.telemetry.validated(body.task_id, validation)
        observation = host.observe(execution, validation, payload={"batch_id": str(batch_id), "item_id": item.id})
        events = observation.events(wanted)
        if events:
            service.telemetry.emitted(await asyncio.gather(*(host.aemit(event) for event in events)))
        valid_count += validation.is_valid
        results.append(_verdict(item, validation))
        if number % _YIELD_EVERY == 0:
            await asyncio.sleep(0)
    total = len(body.items)
    return json_answer(
        {
            "batch_id": str(batch_id),
            "task_id": str(body.task_id),
            "total_items": total,
            "valid_count": valid_count,
            "invalid_count": total - valid_count,
            "accuracy_rate": valid_count / total if total else 0.0,
            "results": results,
            "total_duration_ms": round((time.perf_counter() - started) * 1000, 3),
        }
    )


def _verdict(item: BatchValidateItem, validation: ValidationReport) -> dict[str, object]:
    """One item's result: the failing validators' messages (or the passing ones'), the lowest confidence."""
    if validation.is_valid:
        message = "; ".join(r.message for r in validation.results if r.message) or "valid"
    else:
        message = "; ".join(_said(r) for r in validation.results if not r.is_valid) or "invalid"
    scores = [r.confidence_score for r in validation.results if r.confidence_score is not None]
    return {
        "id": item.id,
        "is_valid": validation.is_valid,
        "message": message,
        "confidence_score": min(scores) if scores else None,
    }


def _said(result: ValidationResult) -> str:
    """A failing verdict's message and its first error, where it is (``$.output.label: ...``)."""
    text = result.message or f"{result.validator_type}: invalid"
    for where, errors in result.errors.items():
        if errors:
            return f"{text}; {where}: {errors[0]}"
    return text


def router() -> APIRouter:
    """The batch validation route."""
    routes = APIRouter(tags=["batch"])
    routes.add_api_route(
        "/api/v1/batch/validate",
        batch_validate,
        methods=["POST"],
        response_model=BatchValidateResponse,
        responses={**ERRORS, 404: {"model": ErrorBody, "description": "The task is not in the tasks table"}},
        openapi_extra=request_body(BatchValidateRequest),
    )
    return routes
