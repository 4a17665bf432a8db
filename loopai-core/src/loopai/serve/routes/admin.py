"""``POST /api/v1/admin/reload``: re-read the configuration and swap the plugins without a restart."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from loopai._wire import ErrorBody
from loopai.serve._answers import ERRORS, json_answer
from loopai.serve._deps import Authenticated, ServiceDep
from loopai.serve._errors import ApiError

__all__ = ["router"]


async def reload(service: ServiceDep, caller: Authenticated) -> Response:
    """200 with what changed (plugins ``added``, ``removed``, ``reconfigured``, and ``problems``)
    once the new plugin set runs; 409 ``RELOAD_FAILED`` when it could not be built or started
    (nothing changed: the previous plugins keep running), with the same object in ``details``;
    409 too with ``--workers N``, where a request reaches one worker: SIGHUP to the main process
    restarts them all. 403 ``ADMIN_NEEDS_API_KEY`` when the service has no API keys: the key gate
    lets anyone through then, and anyone who reaches the port must not swap the plugins."""
    if not service.keys.required:
        main = os.getppid() if service.worker_processes > 1 else os.getpid()
        raise ApiError(
            403,
            "ADMIN_NEEDS_API_KEY",
            "POST /api/v1/admin/reload needs an API key and this service has none: set [serve] api_keys (a "
            "SIGHUP takes them) or LOOPAI_API_KEYS (at the next start), then send Authorization: Bearer <key>; "
            f"or send SIGHUP to the service (pid {main}), which reloads without a key; nothing was reloaded",
        )
    service.ensure_ready()
    if service.worker_processes > 1:  # one worker would reload, the others not: they would answer differently
        raise ApiError(
            409,
            "RELOAD_FAILED",
            f"this service runs {service.worker_processes} worker processes and a request reaches only one: send "
            f"SIGHUP to the main process (pid {os.getppid()}), which restarts every worker on the new "
            "configuration; nothing was reloaded",
        )
    result = await service.areload()
    if not result.reloaded:
        raise ApiError(409, "RELOAD_FAILED", result.summary(), details=result.to_dict())
    return json_answer(result.to_dict())


def router() -> APIRouter:
    """The admin routes."""
    routes = APIRouter(tags=["admin"])
    failed: dict[int | str, dict[str, Any]] = {
        403: {
            "model": ErrorBody,
            "description": "ADMIN_NEEDS_API_KEY: the service has no API keys ([serve] api_keys); SIGHUP reloads",
        },
        409: {
            "model": ErrorBody,
            "description": "RELOAD_FAILED: nothing changed (details says why), or --workers N: SIGHUP the main process",
        },
    }
    routes.add_api_route("/api/v1/admin/reload", reload, methods=["POST"], responses={**ERRORS, **failed})
    return routes
