"""``POST /api/v1/webhooks/receive``: upstream Loopai's webhook deliveries, relayed to loopai's handlers.

Authenticated by the delivery's signature (``[serve] inbound_secret``), not by an API key:
upstream's ``WebhookService`` signs its deliveries and sends no key. A bad or missing signature is
refused (401) before the body is looked at. The event goes to the handlers through the outbox
(202), unless its event id is there already: then the delivery is acknowledged (200, ``duplicate``)
and not emitted again. Which one it is comes from recording the event itself (the outbox records an
event id once per handler, in one transaction), so of copies that arrive at once, on one replica or
on several sharing the outbox, exactly one is answered 202. A handler enabled since the first copy
has not had the event: a repeat is recorded for it, and answered 202 naming only it. An event that
no handler takes is not stored, so its repeat is acknowledged 202 again (and still delivered to
nobody); without an outbox (inline delivery) repeats are not recognised.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Header, Request
from starlette.responses import Response

from loopai._wire import ErrorBody, WebhookReceived
from loopai.serve._answers import PUBLIC_ERRORS, json_answer
from loopai.serve._deps import ServiceDep, parsed
from loopai.serve._errors import ApiError
from loopai.serve._inbound import InboundDelivery, signature_matches, to_event
from loopai.serve._openapi import request_body
from loopai.serve.routes.events import handlers_of

__all__ = ["router"]


async def receive(
    request: Request,
    service: ServiceDep,
    x_loopai_signature: Annotated[str | None, Header(description="sha256=<hex HMAC-SHA256 of the body>")] = None,
    x_loopai_event_id: Annotated[str | None, Header(description="the event's id (the body's id is used)")] = None,
    x_loopai_event_type: Annotated[str | None, Header(description="the event's type (the body's is used)")] = None,
    x_loopai_delivery_attempt: Annotated[str | None, Header(description="which attempt this is, from 1")] = None,
) -> Response:
    """202 once the event is in the outbox for its handlers; 200 for a repeat; 401 for a bad signature."""
    raw = await request.body()
    if not signature_matches(service.inbound_key, raw, x_loopai_signature):
        raise ApiError(401, "UNAUTHORIZED", "the delivery's signature does not verify")
    service.ensure_ready()  # after the signature: a stranger learns nothing, not even that
    delivery = parsed(InboundDelivery, raw)
    event = to_event(delivery, x_loopai_delivery_attempt)
    report = await service.host.aemit(event)
    handlers = handlers_of(report)
    outbox = service.host.outbox
    if not handlers and outbox is not None:
        # Recorded for no handler: a repeat (its deliveries are committed, so this read sees them), or
        # an event nobody takes. In a thread: a database outbox may wait for its database.
        earlier = await asyncio.to_thread(outbox.deliveries, event_ids=[str(event.event_id)])
        if earlier:
            handlers = sorted({record.handler for record in earlier})
            return json_answer(_received(event.event_id, event.event_type.value, True, handlers), 200)
    service.telemetry.emitted([report])  # a repeat is not counted as emitted again
    return json_answer(_received(event.event_id, event.event_type.value, False, handlers), 202)


def _received(event_id: object, event_type: str, duplicate: bool, handlers: list[str]) -> dict[str, object]:
    return {"event_id": str(event_id), "event_type": event_type, "duplicate": duplicate, "handlers": handlers}


def router() -> APIRouter:
    """The inbound webhook route."""
    routes = APIRouter(tags=["webhooks"])
    routes.add_api_route(
        "/api/v1/webhooks/receive",
        receive,
        methods=["POST"],
        status_code=202,
        response_model=WebhookReceived,
        responses={
            **PUBLIC_ERRORS,
            200: {"model": WebhookReceived, "description": "A repeat of an event received before: not emitted again"},
            401: {"model": ErrorBody, "description": "The signature is missing or does not verify"},
            503: {"model": ErrorBody, "description": "The service is starting or stopping"},
        },
        openapi_extra=request_body(InboundDelivery),
    )
    return routes
