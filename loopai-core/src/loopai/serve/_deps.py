"""What routes need: the service (and through it the host) and the caller's identity.

Both are cheap reads of the request, usable as FastAPI dependencies (``ServiceDep``,
``Authenticated``) and as plain calls. The per-execution routes (``validate``, ``sample``) call
them and parse their body themselves: FastAPI's dependency resolution and body parameter cost about
40 µs a request, as much as the rest of such a request (see docs/PERFORMANCE.md). The key itself is
checked before any route runs, by the gate (:mod:`loopai.serve._gate`).
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from loopai.serve._security import ANONYMOUS, Caller
from loopai.serve._service import Service

__all__ = ["Authenticated", "ServiceDep", "caller_of", "parsed", "service_of", "validated"]

_M = TypeVar("_M", bound=BaseModel)


def service_of(request: Request) -> Service:
    """The service the application was built for."""
    service: Service = request.app.state.service
    return service


def caller_of(request: Request) -> Caller:
    """Who is calling, as the gate authenticated them (``anonymous`` without keys)."""
    caller: Caller = getattr(request.state, "caller", ANONYMOUS)
    return caller


async def _service(request: Request) -> Service:
    return service_of(request)


async def _caller(request: Request) -> Caller:
    return caller_of(request)


ServiceDep = Annotated[Service, Depends(_service)]
Authenticated = Annotated[Caller, Depends(_caller)]


def parsed(model: type[_M], raw: bytes) -> _M:
    """``raw`` (a JSON body) as ``model``; 422 naming each refused field, as FastAPI's own parsing says."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise _refused(exc) from None


def validated(model: type[_M], document: Any) -> _M:
    """An already parsed JSON ``document`` as ``model``; 422 naming each refused field."""
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise _refused(exc) from None


def _refused(exc: ValidationError) -> RequestValidationError:
    return RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)])
