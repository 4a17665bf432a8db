"""How a ``batch/run`` answers: Server-Sent Events or one JSON document, both written as they come.

SSE (``Accept: text/event-stream``): ``event: result`` with ``id:`` the item's sequence number and
the result line as ``data:``; ``event: progress``; a final ``event: done`` with the summary; when
the batch itself fails, a final ``event: error`` with the error body instead. JSON: ``{"batch_id",
"results": [...], "summary"}``, written result by result, so that a large batch never sits in
memory as a list.

An NDJSON upload's answer starts once the upload has ended (see :mod:`._upload`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any, Protocol

from loopai._log import logger
from loopai.serve._batch import BatchRun

__all__ = ["JsonFormat", "SseFormat", "encoded"]

log = logger("loopai.serve")

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class Format(Protocol):
    """Turns a batch's outputs into bytes."""

    def head(self) -> bytes: ...

    def encode(self, outputs: list[tuple[str, Any]]) -> bytes: ...

    def failure(self, trace_id: str) -> bytes | None: ...


class SseFormat:
    """Server-Sent Events, ``\\n`` line ends (a result line never holds a newline: it is compact JSON)."""

    def head(self) -> bytes:
        return b""

    def encode(self, outputs: list[tuple[str, Any]]) -> bytes:
        parts: list[str] = []
        for kind, value in outputs:
            if kind == "results":
                parts.extend(f"id: {result.seq}\nevent: result\ndata: {result.text}\n\n" for result in value)
            else:
                parts.append(f"event: {kind}\ndata: {_encode(value)}\n\n")
        return "".join(parts).encode("utf-8")

    def failure(self, trace_id: str) -> bytes:
        body = {
            "code": "INTERNAL_ERROR",
            "message": "the batch failed; results sent so far stand",
            "details": None,
            "trace_id": trace_id,
            "timestamp": datetime.now(timezone.utc).isoformat(),
        }
        return f"event: error\ndata: {_encode(body)}\n\n".encode()


class JsonFormat:
    """One JSON document: the batch id, the results in order, the summary."""

    def __init__(self, batch_id: uuid.UUID) -> None:
        self._batch_id = batch_id
        self._first = True

    def head(self) -> bytes:
        return f'{{"batch_id":"{self._batch_id}","results":['.encode()

    def encode(self, outputs: list[tuple[str, Any]]) -> bytes:
        parts = []
        for kind, value in outputs:
            if kind == "results":
                for result in value:
                    parts.append(result.text if self._first else "," + result.text)
                    self._first = False
            elif kind == "done":
                parts.append(f'],"summary":{_encode(value)}}}')
        return "".join(parts).encode("utf-8")

    def failure(self, trace_id: str) -> None:
        return None  # a JSON document cannot say so once begun: the answer is cut short


async def encoded(run: BatchRun, form: Format) -> AsyncIterator[bytes]:
    """``run``'s outputs as ``form`` writes them; a failure of the batch is logged with a trace id and
    ends the stream (with an ``error`` event, in SSE)."""
    yield form.head()
    try:
        async for outputs in run.outputs():
            chunk = form.encode(outputs)
            if chunk:
                yield chunk
    except Exception as exc:
        trace_id = uuid.uuid4().hex
        log.error("batch %s failed (trace %s)", run.batch_id, trace_id, exc_info=exc)
        tail = form.failure(trace_id)
        if tail is None:
            raise
        yield tail
