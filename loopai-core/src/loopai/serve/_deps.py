"""What routes need: the service (and through it the host) and the caller's identity.

Both are cheap reads of the request, usable as FastAPI dependencies (``ServiceDep``,
``Authenticated``) and as plain calls. The per-execution routes (``validate``, ``sample``) call
them and parse their body themselves: FastAPI's dependency resolution and body parameter cost about
40 µs a request, as much as the rest of such a request (see docs/PERFORMANCE.md). The key itself is
checked before any route runs, by the gate (:mod:`loopai.serve._gate`).
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import pydantic_core
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from loopai.serve._errors import ApiError
from loopai.serve._security import ANONYMOUS, Caller
from loopai.serve._service import Service

__all__ = [
    "Authenticated",
    "ServiceDep",
    "caller_of",
    "json_document",
    "parsed",
    "service_of",
    "validated",
    "within_batch_limit",
]

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


def json_document(raw: bytes) -> Any:
    """``raw`` parsed as JSON; 422 (``malformed JSON``, naming where) when it is not JSON."""
    try:
        return pydantic_core.from_json(raw)
    except ValueError as exc:
        problem = {"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error", "ctx": {"error": str(exc)}}
        raise RequestValidationError([problem]) from None


def within_batch_limit(document: Any, limit: int, advice: str) -> None:
    """413 ``BATCH_TOO_LARGE`` when ``document`` is an object whose ``items`` list is longer than ``limit``
    (checked before the items are validated one by one); ``advice`` says what to do instead."""
    items = document.get("items") if isinstance(document, dict) else None
    if isinstance(items, list) and len(items) > limit:
        raise ApiError(
            413,
            "BATCH_TOO_LARGE",
            f"the batch has {len(items):,} items, more than max_batch_items ({limit:,}); {advice}",
            details={"items": len(items), "max_batch_items": limit},
        )


def validated(model: type[_M], document: Any) -> _M:
    """An already parsed JSON ``document`` as ``model``; 422 naming each refused field."""
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise _refused(exc) from None


def _refused(exc: ValidationError) -> RequestValidationError:
    return RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)])
