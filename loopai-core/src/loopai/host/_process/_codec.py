"""What crosses the pipe between a host and an isolated plugin's worker: one byte says what, JSON says the rest.

Requests: ``i`` load (a JSON header line, then the pickled plugin, if it is not a module),
``u`` run ``startup``, ``c`` call (the kind's code, then the hook's two arguments as JSON of the public models, one per
line), ``q`` stop. Replies: ``l`` loaded, ``s`` started, ``d`` stopped, ``r`` a result (its JSON),
``e`` an exception (JSON: type, message, traceback), ``w`` a result of the wrong type (its type
name), ``m`` out of memory.
"""

from __future__ import annotations

import json
import traceback
from typing import Any, Final

from pydantic import BaseModel

from loopai._models import (
    ExecutionRecord,
    SamplingContext,
    SamplingDecision,
    ValidationContext,
    ValidationResult,
    WebhookEvent,
    WebhookHandlerContext,
)

__all__ = [
    "ARGUMENTS",
    "CALL",
    "CODES",
    "EXCEPTION",
    "LOADED",
    "MEMORY",
    "RESULT",
    "RESULTS",
    "START",
    "STARTED",
    "STARTUP",
    "STOP",
    "STOPPED",
    "WRONG",
    "decode_call",
    "describe_exception",
    "encode_call",
    "to_json",
]

START: Final = b"i"
STARTUP: Final = b"u"
CALL: Final = b"c"
STOP: Final = b"q"
LOADED: Final = ord("l")
STARTED: Final = ord("s")
STOPPED: Final = ord("d")
RESULT: Final = ord("r")
EXCEPTION: Final = ord("e")
WRONG: Final = ord("w")
MEMORY: Final = ord("m")

CODES: Final = {"validator": b"v", "sampler": b"s", "webhook-handler": b"h"}
"""One byte per kind (by its label), naming the hook a call request is for."""
ARGUMENTS: Final[dict[int, tuple[type[BaseModel], type[BaseModel]]]] = {
    ord("v"): (ExecutionRecord, ValidationContext),
    ord("s"): (ExecutionRecord, SamplingContext),
    ord("h"): (WebhookEvent, WebhookHandlerContext),
}
RESULTS: Final[dict[int, type[BaseModel] | None]] = {
    ord("v"): ValidationResult,
    ord("s"): SamplingDecision,
    ord("h"): None,
}


def to_json(model: BaseModel) -> bytes:
    """The model's JSON (pydantic never writes a raw newline in it, so lines can separate models)."""
    return model.__pydantic_serializer__.to_json(model)


def encode_call(code: bytes, first: BaseModel, second: BaseModel) -> bytes:
    """The request for one hook call (``code`` from :data:`CODES`)."""
    return b"".join((CALL, code, to_json(first), b"\n", to_json(second)))


def decode_call(frame: bytes) -> tuple[int, Any, Any]:
    """The kind code and the two arguments of a call request (as read-only models)."""
    code = frame[1]
    first_type, second_type = ARGUMENTS[code]
    first, _, second = frame[2:].partition(b"\n")
    return code, first_type.model_validate_json(first), second_type.model_validate_json(second)


def describe_exception(error: BaseException) -> bytes:
    """The ``e`` reply for ``error``: its qualified type name, message and traceback."""
    kind = type(error)
    module = "" if kind.__module__ == "builtins" else f"{kind.__module__}."
    text = "".join(traceback.format_exception(kind, error, error.__traceback__, limit=20))
    body = {"type": f"{module}{kind.__qualname__}", "message": str(error), "traceback": text[-8000:]}
    return bytes([EXCEPTION]) + json.dumps(body).encode()
