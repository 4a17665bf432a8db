"""``GET /api/v1/plugins``: the plugins the service found, as ``loopai plugins list --json`` shows them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Query
from starlette.responses import Response

from loopai._kinds import KINDS
from loopai._wire import PluginInfo
from loopai.serve._answers import ERRORS, json_answer
from loopai.serve._deps import Authenticated, ServiceDep

__all__ = ["router"]

if TYPE_CHECKING:
    Kind = str
else:  # the kind table's labels, so that a wrong one is answered with the list of right ones
    Kind = Literal[tuple(kind.label for kind in KINDS)]


async def plugins(
    service: ServiceDep,
    caller: Authenticated,
    all: Annotated[bool, Query(description="include plugins that selection turned off")] = False,
    kind: Annotated[Kind | None, Query(description="only this kind")] = None,
) -> Response:
    """Every discovered plugin that selection turned on (``all``: every one), with its status and why."""
    shown = [
        record.to_dict()
        for record in service.host.discovered
        if (all or record.selected) and kind in (None, record.kind)
    ]
    return json_answer(shown)


def router() -> APIRouter:
    """The plugins route."""
    routes = APIRouter(tags=["plugins"])
    routes.add_api_route("/api/v1/plugins", plugins, methods=["GET"], response_model=list[PluginInfo], responses=ERRORS)
    return routes
