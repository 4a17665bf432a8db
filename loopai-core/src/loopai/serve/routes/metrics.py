"""``GET /metrics``: Prometheus text of every series (see :mod:`loopai.serve._metrics`); no API key,
as scrapers expect."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from loopai.serve._deps import ServiceDep

__all__ = ["router"]


async def metrics(service: ServiceDep) -> Response:
    """The metrics, this process's counts brought up to date first. What waits for the outbox is
    waited for within a bound: a scrape during an outage answers with what the service has (the
    outbox's gauge left out), at once."""
    text = await service.metrics_text()
    return Response(text, media_type=CONTENT_TYPE_LATEST)


def router() -> APIRouter:
    """The metrics route."""
    routes = APIRouter(tags=["metrics"])
    routes.add_api_route(
        "/metrics",
        metrics,
        methods=["GET"],
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"}},
    )
    return routes
