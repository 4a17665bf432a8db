"""``POST /api/v1/admin/reload``: re-read the configuration and swap the plugins without a restart."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from loopai.serve._answers import ERRORS, json_answer
from loopai.serve._deps import Authenticated, ServiceDep
from loopai.serve._errors import ApiError

__all__ = ["router"]


async def reload(service: ServiceDep, caller: Authenticated) -> Response:
    """200 with what changed (plugins ``added``, ``removed``, ``reconfigured``, and ``problems``)
    once the new plugin set runs; 409 ``RELOAD_FAILED`` when it could not be built or started
    (nothing changed: the previous plugins keep running), with the same object in ``details``."""
    service.ensure_ready()
    result = await service.areload()
    if not result.reloaded:
        raise ApiError(409, "RELOAD_FAILED", result.summary(), details=result.to_dict())
    return json_answer(result.to_dict())


def router() -> APIRouter:
    """The admin routes."""
    routes = APIRouter(tags=["admin"])
    routes.add_api_route("/api/v1/admin/reload", reload, methods=["POST"], responses=ERRORS)
    return routes
