"""``POST /api/v1/sample``: whether a sampler selects one execution for deeper checking."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from loopai._wire import SampleRequest, SamplingReportBody
from loopai.serve._answers import ERRORS, report_answer
from loopai.serve._deps import parsed, service_of
from loopai.serve._openapi import request_body

__all__ = ["router"]


async def sample(request: Request) -> Response:
    """The sampling report: the samplers are asked by priority until one says yes.

    Without a ``context`` the task's is used (its sampling rate from the tasks table). The
    execution is counted in its task's statistics (shared by every replica when the state is).
    """
    service = service_of(request)  # a per-execution route: no dependency injection (see loopai.serve._deps)
    body = parsed(SampleRequest, await request.body())
    report = await service.host.ashould_sample(body.execution, body.context)
    service.telemetry.sampled(body.execution.task_id, report)
    return report_answer(report)


def router() -> APIRouter:
    """The sampling route."""
    routes = APIRouter(tags=["sampling"])
    routes.add_api_route(
        "/api/v1/sample",
        sample,
        methods=["POST"],
        response_model=SamplingReportBody,
        responses=ERRORS,
        openapi_extra=request_body(SampleRequest),
    )
    return routes
