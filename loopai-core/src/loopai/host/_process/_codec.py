"""What crosses the pipe between a host and an isolated plugin's worker: one byte says what, JSON says the rest.

Requests: ``i`` load (a JSON header line, then the pickled plugin, if it is not a module),
``u`` run ``startup``, ``c`` call (the kind's code, then the hook's two arguments as JSON of the public models, one per
line), ``q`` stop. Replies: ``l`` loaded, ``s`` started, ``d`` stopped, ``r`` a result (its JSON),
``e`` an exception (JSON: type, message, traceback), ``w`` a result of the wrong type (its type
name; for a handler, which returns nothing, what it returned as :func:`~loopai.host._failures.what_returned`
names it), ``m`` out of memory.
"""

from __future__ import annotations

import json
import traceback
from typing import Any, Final

from pydantic import BaseModel

from loopai._kinds import SAMPLER, VALIDATOR, WEBHOOK_HANDLER
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
    "Decoder",
    "Encoder",
    "describe_exception",
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

CODES: Final = {VALIDATOR.label: b"v", SAMPLER.label: b"s", WEBHOOK_HANDLER.label: b"h"}
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


class Encoder:
    """Encodes call requests for one plugin. A context is read-only and usually the same object call
    after call (a task's), so the last one's JSON is kept and reused while the object is the same."""

    __slots__ = ("_code", "_context", "_json")

    def __init__(self, code: bytes) -> None:
        self._code = code
        self._context: BaseModel | None = None
        self._json = b""

    def __call__(self, first: BaseModel, second: BaseModel) -> bytes:
        """The request for one hook call with arguments ``first`` and ``second``."""
        if second is not self._context:
            self._context, self._json = second, to_json(second)
        return b"".join((CALL, self._code, to_json(first), b"\n", self._json))


class Decoder:
    """Decodes call requests in a worker. The last few contexts are kept by their JSON: the same
    bytes give the same (read-only) model, so a plugin's caches keyed by identity keep working."""

    __slots__ = ("_contexts",)

    _KEEP: Final = 16

    def __init__(self) -> None:
        self._contexts: dict[tuple[int, bytes], Any] = {}

    def __call__(self, frame: bytes) -> tuple[int, Any, Any]:
        """The kind code and the two arguments of a call request (as read-only models)."""
        code = frame[1]
        first_type, second_type = ARGUMENTS[code]
        first, _, second = frame[2:].partition(b"\n")
        context = self._contexts.get((code, second))
        if context is None:
            if len(self._contexts) >= self._KEEP:
                self._contexts.clear()
            context = self._contexts[(code, second)] = second_type.model_validate_json(second)
        return code, first_type.model_validate_json(first), context


def describe_exception(error: BaseException) -> bytes:
    """The ``e`` reply for ``error``: its qualified type name, message and traceback."""
    kind = type(error)
    module = "" if kind.__module__ == "builtins" else f"{kind.__module__}."
    text = "".join(traceback.format_exception(kind, error, error.__traceback__, limit=20))
    body = {"type": f"{module}{kind.__qualname__}", "message": str(error), "traceback": text[-8000:]}
    return bytes([EXCEPTION]) + json.dumps(body).encode()
