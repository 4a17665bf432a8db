"""``POST /api/v1/events``: an event for the webhook handlers, durable before it is acknowledged."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from loopai._models import WebhookEvent
from loopai._report import EmitReport
from loopai._wire import EventAccepted
from loopai.serve._answers import ERRORS, json_answer
from loopai.serve._deps import Authenticated, ServiceDep, parsed
from loopai.serve._openapi import request_body

__all__ = ["handlers_of", "router"]


def handlers_of(report: EmitReport) -> list[str]:
    """The handlers an emit went to, in priority order: recorded for them (the delivery workers
    deliver in the background), or, without an outbox, called (whether they took it or not)."""
    failed = {failure.plugin for failure in report.failures}
    called = [*report.pending, *report.delivered]
    return [*called, *(name for name in sorted(failed) if name not in called)]


async def emit(request: Request, service: ServiceDep, caller: Authenticated) -> Response:
    """202 once the event and a pending delivery per handler are in the outbox.

    ``handlers`` names the enabled handlers that take the event's type (none: nobody takes it,
    and nothing is stored). An ``event_id`` sent again is not delivered again to a handler that
    has it: a client may retry safely.
    """
    event = parsed(WebhookEvent, await request.body())
    report = await service.host.aemit(event)  # returns once the event is recorded: durable before the 202
    service.telemetry.emitted([report])
    return json_answer({"event_id": str(event.event_id), "handlers": handlers_of(report)}, 202)


def router() -> APIRouter:
    """The events route."""
    routes = APIRouter(tags=["events"])
    routes.add_api_route(
        "/api/v1/events",
        emit,
        methods=["POST"],
        status_code=202,
        response_model=EventAccepted,
        responses=ERRORS,
        openapi_extra=request_body(WebhookEvent),
    )
    return routes
