"""``POST /api/v1/validate``: one execution through every enabled validator."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from loopai._wire import ValidateRequest, ValidationReportBody
from loopai.serve._answers import ERRORS, report_answer
from loopai.serve._deps import parsed, service_of
from loopai.serve._openapi import request_body

__all__ = ["router"]


async def validate(request: Request) -> Response:
    """The validation report: each validator's result, in priority order, and ``is_valid``.

    Without a ``context`` the task's is used (its schemas from the tasks table). A validator
    that fails is reported invalid and named in ``failures``.
    """
    service = service_of(request)  # a per-execution route: no dependency injection (see loopai.serve._deps)
    body = parsed(ValidateRequest, await request.body())
    report = await service.host.avalidate(body.execution, body.context)
    service.telemetry.validated(body.execution.task_id, report)
    return report_answer(report)


def router() -> APIRouter:
    """The validation route."""
    routes = APIRouter(tags=["validation"])
    routes.add_api_route(
        "/api/v1/validate",
        validate,
        methods=["POST"],
        response_model=ValidationReportBody,
        responses=ERRORS,
        openapi_extra=request_body(ValidateRequest),
    )
    return routes
