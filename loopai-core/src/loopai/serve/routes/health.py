"""``/health`` and the probes: liveness (the process answers) and readiness (plugins started, the
outbox and the state store answer). None needs an API key."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from loopai._version import core_version
from loopai._wire import ErrorBody, Health, Liveness, Readiness
from loopai.serve._answers import json_answer
from loopai.serve._deps import ServiceDep
from loopai.serve._errors import ApiError

__all__ = ["router"]


async def health() -> Response:
    """The service answers, and its version."""
    return json_answer({"status": "ok", "version": core_version()})


async def live() -> Response:
    """Liveness: the process answers requests."""
    return json_answer({"status": "ok"})


async def ready(service: ServiceDep) -> Response:
    """Readiness: 200 once the plugins are started and the outbox and state store answer; 503
    (``NOT_READY``, each check in ``details.checks``) until then, and while stopping."""
    checks = await service.readiness()
    if any(found != "ok" for found in checks.values()):
        raise ApiError(503, "NOT_READY", "the service is not ready", details={"checks": checks})
    return json_answer({"status": "ready", "checks": checks})


def router() -> APIRouter:
    """The health routes."""
    routes = APIRouter(tags=["health"])
    routes.add_api_route("/health", health, methods=["GET"], response_model=Health)
    routes.add_api_route("/api/v1/health/live", live, methods=["GET"], response_model=Liveness)
    routes.add_api_route(
        "/api/v1/health/ready",
        ready,
        methods=["GET"],
        response_model=Readiness,
        responses={503: {"model": ErrorBody, "description": "Not ready: details.checks says what is not"}},
    )
    return routes
