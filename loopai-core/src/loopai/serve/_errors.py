"""Every error the service answers: one JSON shape (``code``, ``message``, ``details``, ``trace_id``,
``timestamp``), whatever raised it, and never a traceback.

Routes raise :class:`ApiError`; FastAPI's refusals (an unknown path, a wrong method, a body that
does not parse or validate) and anything unexpected are turned into the same shape by the handlers
:func:`install_error_handlers` adds. An outbox or a state database that does not answer
(:class:`loopai.OutboxError`, :class:`loopai.database.DatabaseUnavailable`) is 503 ``NOT_READY``
with ``Retry-After``, logged in one line. An unexpected exception is logged with its traceback and
its trace id; the client gets the trace id and a message that says nothing else.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from loopai._errors import OutboxError, choice_hint
from loopai._log import logger
from loopai._suggest import closest, did_you_mean
from loopai.database import DatabaseUnavailable
from loopai.serve._media import STREAMED_UPLOADS, is_ndjson

__all__ = ["ApiError", "error_response", "field_problems", "install_error_handlers", "trace_id_of"]

log = logger("loopai.serve")

_CODES: Final = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_ERROR",
    503: "NOT_READY",
}
_API: Final = "/api/v1/"
_STARLETTE_DETAILS: Final = frozenset({"Not Found", "Method Not Allowed"})
"""Starlette's own texts for a path no route has and a method a route does not take."""
_TRACEPARENT: Final = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_REQUEST_ID: Final = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_MAX_FIELD_PROBLEMS: Final = 50
UNAVAILABLE_RETRY: Final = "5"
"""``Retry-After`` (seconds) of a 503 for an outbox or a state database that does not answer."""


class ApiError(HTTPException):
    """An error answer: its status, stable ``code``, a message for people and optional ``details``.

    An :class:`~starlette.exceptions.HTTPException`, so that FastAPI passes it through even when
    it is raised while a request body is being read (the body limit).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, message, dict(headers) if headers else None)
        self.code = code
        self.message = message
        self.details = dict(details) if details is not None else None


def trace_id_of(headers: Mapping[str, str]) -> str:
    """The caller's trace id (W3C ``traceparent``, else a sane ``X-Request-Id``), else a new one."""
    parent = _TRACEPARENT.match(headers.get("traceparent", ""))
    if parent is not None:
        return parent.group(1)
    given = headers.get("x-request-id", "")
    if _REQUEST_ID.match(given):
        return given
    return uuid.uuid4().hex


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    trace_id: str,
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The JSON error answer; ``X-Trace-Id`` repeats the body's trace id."""
    body = {
        "code": code,
        "message": message,
        "details": dict(details) if details is not None else None,
        "trace_id": trace_id,
        "timestamp": datetime.now(timezone.utc).isoformat(),
    }
    answer_headers = {"X-Trace-Id": trace_id, **(headers or {})}
    return Response(json.dumps(body), status, answer_headers, media_type="application/json")


def field_problems(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """pydantic's errors as ``{"field", "message", "type"}``, never echoing the refused input."""
    problems = []
    for error in errors[:_MAX_FIELD_PROBLEMS]:
        problems.append({"field": _field(error.get("loc", ())), "message": _message(error), "type": error["type"]})
    return problems


def _field(loc: Sequence[Any]) -> str:
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "body"


def _message(error: Mapping[str, Any]) -> str:
    if error["type"] == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "")
        return f"malformed JSON: {reason}" if reason else "malformed JSON"
    return str(error.get("msg", "invalid")).removeprefix("Value error, ") + choice_hint(error)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every refusal and failure of ``app`` in the one error shape."""
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    # Handled where the route raised them: neither the server nor Starlette logs them again.
    app.add_exception_handler(OutboxError, _unavailable)
    app.add_exception_handler(DatabaseUnavailable, _unavailable)
    app.add_exception_handler(Exception, _unexpected)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    trace_id = trace_id_of(request.headers)
    if isinstance(exc, ApiError):
        return error_response(
            exc.status_code, exc.code, exc.message, trace_id=trace_id, details=exc.details, headers=exc.headers
        )
    code = _CODES.get(exc.status_code, f"HTTP_{exc.status_code}")
    if isinstance(exc.detail, str) and exc.detail not in _STARLETTE_DETAILS:
        message = exc.detail
    elif exc.status_code == 404:
        message = f"no such resource{_path_meant(request)} (every endpoint: /openapi.json)"  # the path is not echoed
    elif exc.status_code == 405:
        allowed = {key.lower(): value for key, value in (exc.headers or {}).items()}.get("allow")
        message = f"{request.method} is not allowed on {request.url.path}" + (f": use {allowed}" if allowed else "")
    else:
        message = code.lower()
    return error_response(exc.status_code, code, message, trace_id=trace_id, headers=exc.headers)


def _path_meant(request: Request) -> str:
    """``; did you mean '/api/v1/validate'?`` for a path close to one of the service's (compared after
    the ``/api/v1/`` they share, which would make every path look close to every other)."""
    path = request.url.path
    paths = [*request.app.openapi().get("paths", {}), "/openapi.json", "/docs"]  # the OpenAPI's: built once
    shared = _API if path.startswith(_API) else ""
    tails = {known[len(shared) :]: known for known in paths if known.startswith(shared)}
    found = closest(path[len(shared) :], tails, limit=1)
    return f"; did you mean {tails[found[0]]!r}?" if found else ""


async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
    problems = field_problems(exc.errors())
    first = problems[0] if problems else {"field": "body", "message": "invalid request"}
    message = f"{first['field']}: {first['message']}"
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more)"
    message += _unwrapped_hint(exc.errors()) or _unknown_field_hint(request, exc.errors())
    if first.get("type") == "json_invalid" and is_ndjson(request.headers.get("content-type", "")):
        streamed = ", ".join(sorted(STREAMED_UPLOADS))
        message += f"; JSON Lines are read by {streamed}, this endpoint takes one JSON document"
    return error_response(
        422, "VALIDATION_ERROR", message, trace_id=trace_id_of(request.headers), details={"errors": problems}
    )


def _unwrapped_hint(errors: Sequence[Mapping[str, Any]]) -> str:
    """A hint when an object's fields were sent at its top instead of inside the one field it lacks
    (an execution record posted bare, or as a batch item, where ``{"execution": {...}}`` is
    expected): about the object of the first error, the body or an item of it."""
    if not errors:
        return ""
    parent = tuple(errors[0].get("loc", ()))[:-1]
    here = [(error["type"], tuple(error.get("loc", ()))) for error in errors]
    missing = [loc[-1] for kind, loc in here if kind == "missing" and loc[:-1] == parent]
    extra = [str(loc[-1]) for kind, loc in here if kind == "extra_forbidden" and loc[:-1] == parent]
    if len(missing) != 1 or not extra:
        return ""
    if len(extra) == 1:  # a misspelt field rather than a record sent bare
        return f" ({extra[0]!r} is not a field{did_you_mean(extra[0], [str(missing[0])])})"
    keys = ", ".join(extra[:3]) + (", ..." if len(extra) > 3 else "")
    where = "the body" if len(parent) <= 1 else _field(parent)
    return f"; {keys} are not fields of {where}: send them inside it, as {{{json.dumps(missing[0])}: {{...}}}}"


def _unknown_field_hint(request: Request, errors: Sequence[Mapping[str, Any]]) -> str:
    """``('contxt' is not a field; did you mean 'context'?)`` for a first error that is an unknown
    key, the fields known there read from the route's body in the OpenAPI document."""
    if not errors or errors[0]["type"] != "extra_forbidden":
        return ""
    loc = tuple(errors[0].get("loc", ()))
    if len(loc) < 2 or loc[0] != "body":
        return ""
    fields = _fields_at(request, loc[1:-1])
    return f" ({str(loc[-1])!r} is not a field{did_you_mean(str(loc[-1]), fields)})" if fields else ""


def _fields_at(request: Request, path: Sequence[Any]) -> list[str]:
    """The properties of the route's JSON body schema at ``path`` (keys and item indexes), or none."""
    route = request.scope.get("route")
    document = request.app.openapi()
    try:
        operation = document["paths"][route.path][request.method.lower()]  # type: ignore[union-attr]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        for part in path:
            schema = _resolved(document, schema)
            schema = schema["items"] if isinstance(part, int) else schema["properties"][part]
        return list(_resolved(document, schema).get("properties", {}))
    except (KeyError, TypeError, AttributeError):
        return []


def _resolved(document: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """``schema`` with its ``$ref`` (or the one of its ``anyOf`` that has one) followed."""
    if "$ref" not in schema:
        schema = next((option for option in schema.get("anyOf", ()) if "$ref" in option), schema)
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return document["components"]["schemas"][name]  # type: ignore[no-any-return]
    return schema


def unavailable_message(exc: BaseException) -> str:
    """What a client is told when the outbox or the state database does not answer (their URLs and
    the reason are in the service's log, not in the answer)."""
    what = "outbox" if isinstance(exc, OutboxError) else "state database"
    return f"the service's {what} does not answer: send the request again in a moment"


async def _unavailable(request: Request, exc: Exception) -> Response:
    trace_id = trace_id_of(request.headers)
    log.warning(
        "%s %s answered 503: %s (trace %s)", request.method, request.url.path, " ".join(str(exc).split()), trace_id
    )
    return error_response(
        503,
        "NOT_READY",
        unavailable_message(exc),
        trace_id=trace_id,
        headers={"Retry-After": UNAVAILABLE_RETRY},
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    trace_id = trace_id_of(request.headers)
    log.error("%s %s failed (trace %s)", request.method, request.url.path, trace_id, exc_info=exc)
    return error_response(500, "INTERNAL_ERROR", "the service failed to answer this request", trace_id=trace_id)
