"""What the sync and async clients share: where the service is, retries, request bodies, answers,
and the reading of a ``batch/run`` event stream."""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from loopai._errors import describe_validation_error
from loopai._models import ExecutionRecord, WebhookEvent
from loopai._wire import BatchRunItem, BatchRunProgress, BatchRunResult, BatchRunSummary, ErrorBody
from loopai.client._errors import LoopaiAPIError

__all__ = [
    "DEFAULT_URL",
    "Endpoint",
    "Chunks",
    "EventStream",
    "RetryPolicy",
    "answer",
    "as_json",
    "json_request",
    "ndjson_chunks",
    "stream_cut",
]

DEFAULT_URL: Final = "http://127.0.0.1:8080"
_RESULT: Final = BatchRunResult.__pydantic_validator__
_RESULT_DATA: Final = b"\nevent: result\ndata: "
DEFAULT_TIMEOUT: Final = httpx.Timeout(60.0, connect=5.0)
_CHUNK: Final = 1 << 16
_SLOW: Final = 0.01
"""Seconds an item was waited for past which the items go out as they come (a producer that waits)."""
_NEVER_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Failures that happen before the request leaves: retrying any call after one is safe."""

_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True)
class Endpoint:
    """The service's base URL and the headers every request carries (the API key)."""

    url: str
    headers: dict[str, str]

    @classmethod
    def resolve(cls, base_url: str | None, api_key: str | None, environ: Mapping[str, str] | None) -> Endpoint:
        """The arguments, else ``LOOPAI_URL`` / ``LOOPAI_API_KEY``, else ``http://127.0.0.1:8080`` and no key."""
        environ = os.environ if environ is None else environ
        url = base_url or environ.get("LOOPAI_URL") or DEFAULT_URL
        if "://" not in url:  # httpx would take "127.0.0.1:8080" for a scheme and a path, and never connect
            given = "LOOPAI_URL" if not base_url else "the base URL"
            raise LoopaiAPIError("INVALID_REQUEST", f"{given} {url!r} has no scheme: write http://{url}")
        key = api_key if api_key is not None else environ.get("LOOPAI_API_KEY")
        headers = {"Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return cls(url.rstrip("/"), headers)


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and after how long, a call is tried again.

    Idempotent calls (health, plugins, ``validate``, ``emit``: an event id is delivered once) are
    retried after a connection error or a 503; the others (``sample``, ``batch_validate``,
    ``batch_run``) only when the request never left (the connection could not be made) or the
    service answered 503 (it acts on nothing before it is ready), since it may have acted on it. A
    streamed batch is not retried: its items are read once.
    The pause doubles from ``backoff`` up to ``max_backoff`` with jitter; a ``Retry-After`` is honoured.
    """

    retries: int = 3
    backoff: float = 0.25
    max_backoff: float = 4.0

    def retry_on(self, error: httpx.TransportError, idempotent: bool) -> bool:
        """Whether a call that failed with ``error`` may be tried again."""
        return idempotent or isinstance(error, _NEVER_SENT)

    def pause(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before try number ``attempt + 1`` (``attempt`` counts from 1)."""
        if retry_after is not None:
            try:
                return min(max(float(retry_after), 0.0), self.max_backoff * 4)
            except ValueError:
                pass
        ceiling = min(self.backoff * 2.0 ** (attempt - 1), self.max_backoff)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def as_json(value: Any) -> Any:
    """A model as its JSON-ready dict; anything else as it is (:func:`json_request` checks what JSON
    cannot carry: a NaN or an infinity stays a float here)."""
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


_JSON_HEADERS: Final = {"Content-Type": "application/json"}


def json_request(body: Any, root: str = "") -> dict[str, Any]:
    """The ``content`` and ``headers`` of a request whose body is ``body`` as JSON (as httpx's ``json=``
    encodes it). What JSON cannot carry, a NaN or an infinity (which a record may hold: the host takes
    it) or an object of a type JSON does not know, raises :class:`LoopaiAPIError` ``INVALID_REQUEST``
    naming its field (``execution.output.score``; ``root`` names the body itself, ``event``): the
    request is not sent."""
    try:
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except (ValueError, TypeError) as exc:
        raise _unsendable(body, root, exc) from None
    return {"content": content, "headers": _JSON_HEADERS}


def _unsendable(body: Any, root: str, exc: BaseException) -> LoopaiAPIError:
    """The error for a ``body`` that ``json.dumps`` refused with ``exc``: the first field it cannot carry."""
    found = _first_unsendable(body, root, set())
    if found is None:  # a circular reference, say: what json said
        return LoopaiAPIError("INVALID_REQUEST", f"the request body cannot be sent as JSON: {exc}")
    field, value = found
    where = field or "the request body"
    if isinstance(value, float):
        message = f"{where} is {value!r}: JSON cannot carry NaN or Infinity (send a number, a string or null)"
    else:
        message = f"{where} is a {type(value).__name__}: JSON cannot carry it (convert it to a string or a number)"
    return LoopaiAPIError("INVALID_REQUEST", message, details={"field": field})


def _first_unsendable(value: Any, path: str, seen: set[int]) -> tuple[str, Any] | None:
    """The path of the first value in ``value`` that JSON cannot carry, and that value; None if there is none."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, value)
    if value is None or isinstance(value, (str, int)):
        return None
    if isinstance(value, (dict, list, tuple)):
        if id(value) in seen:
            return None  # a circular reference: not a field to name
        seen.add(id(value))
        pairs = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in pairs:
            found = _first_unsendable(item, _field(path, key, isinstance(value, dict)), seen)
            if found is not None:
                return found
        return None
    return path, value


def _field(path: str, key: Any, named: bool) -> str:
    """``execution.output`` + ``score`` -> ``execution.output.score``; list indices and odd names in brackets."""
    if not named:
        return f"{path}[{key}]"
    name = str(key)
    if name.isidentifier():
        return f"{path}.{name}" if path else name
    return f"{path}[{json.dumps(name, ensure_ascii=False)}]"


def connection_failed(error: httpx.TransportError, url: str) -> LoopaiAPIError:
    """The error raised when no answer came, retries spent."""
    return LoopaiAPIError("CONNECTION_FAILED", f"no answer from {url}: {type(error).__name__}: {error}")


def answer(response: httpx.Response, model: type[_M]) -> _M:
    """The body of a successful ``response`` as ``model``; :class:`LoopaiAPIError` otherwise."""
    if response.status_code >= 400:
        raise error_of(response)
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise invalid_response(response, exc) from None


def error_of(response: httpx.Response) -> LoopaiAPIError:
    """The service's error answer as the exception (any answer that is not one: ``HTTP_<status>``)."""
    try:
        body = ErrorBody.model_validate_json(response.read())
    except (ValidationError, httpx.HTTPError):
        return LoopaiAPIError(
            f"HTTP_{response.status_code}", response.reason_phrase or "error", status=response.status_code
        )
    message = body.message
    if response.status_code == 401:  # what the service asks for, in the client's terms
        if _sent_key(response.request):
            message += " (the key given was refused: check Client(api_key=...) or LOOPAI_API_KEY)"
        else:
            message += " (no key was given: pass Client(api_key=...) or set LOOPAI_API_KEY)"
    return LoopaiAPIError(body.code, message, status=response.status_code, details=body.details, trace_id=body.trace_id)


def _sent_key(request: httpx.Request) -> bool:
    return "authorization" in request.headers or "x-api-key" in request.headers


def invalid_response(response: httpx.Response, exc: ValidationError) -> LoopaiAPIError:
    return LoopaiAPIError(
        "INVALID_RESPONSE",
        f"the answer of {response.request.url.path} is not what the service sends: {exc.errors()[0]['msg']}",
        status=response.status_code,
    )


def event_of(event: WebhookEvent | Mapping[str, Any]) -> WebhookEvent:
    """``event`` as a :class:`WebhookEvent` (its ``event_id`` fixed here, the same for every retry); a
    dict that is not one raises :class:`LoopaiAPIError` ``INVALID_REQUEST`` naming each field (the
    request is not sent)."""
    if isinstance(event, WebhookEvent):
        return event
    try:
        return WebhookEvent.model_validate(event)
    except ValidationError as exc:
        problems = describe_validation_error(exc)
        raise LoopaiAPIError(
            "INVALID_REQUEST", f"the event is not one: {'; '.join(problems)}", details={"errors": problems}
        ) from None


def batch_items(items: Iterable[Any]) -> list[Any]:
    """The ``items`` of a JSON ``batch/run`` body, from what :func:`ndjson_line` takes: a record (an
    ``ExecutionRecord``, a dict without ``execution``, a line of JSON) goes inside ``{"execution": ...}``;
    a ``BatchRunItem`` or a dict with ``execution`` as it is; blank lines are skipped. A line that is
    not JSON raises :class:`LoopaiAPIError` ``INVALID_REQUEST`` naming it (the request is not sent)."""
    body = []
    for number, item in enumerate(items, 1):
        if isinstance(item, (bytes, str)):
            if not item.strip():
                continue
            try:
                item = json.loads(item)
            except ValueError as exc:
                raise LoopaiAPIError("INVALID_REQUEST", f"item {number} is not JSON: {exc}") from None
        if isinstance(item, ExecutionRecord):
            item = {"execution": item.model_dump(mode="json")}
        elif isinstance(item, Mapping) and "execution" not in item:
            item = {"execution": dict(item)}
        body.append(as_json(item))
    return body


def ndjson_line(item: Any) -> bytes:
    """One ``batch/run`` item as an NDJSON line: a ``BatchRunItem``, an ``ExecutionRecord``, a dict, or a
    line of JSON already (``bytes`` or ``str``: the lines of a ``loopai run`` input file go as they are).
    The service reads each line as ``loopai run`` reads its input, which takes NaN and Infinity: they
    are sent as those (in a model too: pydantic's own JSON would make them null, another verdict)."""
    if isinstance(item, (bytes, str)):
        line = item.encode("utf-8") if isinstance(item, str) else item
        return line if line.endswith(b"\n") else line + b"\n"
    if isinstance(item, BatchRunItem):
        item = item.model_dump(mode="json", exclude_none=True)
    return json.dumps(as_json(item), separators=(",", ":"), default=str).encode("utf-8") + b"\n"


class Chunks:
    """Gathers NDJSON lines into chunks of about 64 KB, except when the items come slowly: an item
    that was waited for more than 10 ms goes out at once, with what was gathered before it, so that
    the service starts on a slow producer's items as they come, not 64 KB later."""

    def __init__(self) -> None:
        self._chunk = bytearray()

    def add(self, item: Any, waited: float) -> bytes | None:
        """Add ``item`` (waited for ``waited`` seconds); the chunk to send now, if any."""
        self._chunk += ndjson_line(item)
        return self.rest() if waited >= _SLOW or len(self._chunk) >= _CHUNK else None

    def rest(self) -> bytes | None:
        """What is gathered, if anything (emptied)."""
        if not self._chunk:
            return None
        chunk = bytes(self._chunk)
        self._chunk.clear()
        return chunk


def ndjson_chunks(items: Iterable[Any]) -> Iterator[bytes]:
    """``items`` as NDJSON (see :class:`Chunks`): one item at a time is encoded, whatever their number."""
    chunks, iterator = Chunks(), iter(items)
    while True:
        asked = time.monotonic()
        item = next(iterator, _NO_MORE)
        if item is _NO_MORE:
            break
        chunk = chunks.add(item, time.monotonic() - asked)
        if chunk is not None:
            yield chunk
    rest = chunks.rest()
    if rest is not None:
        yield rest


_NO_MORE: Final = object()


def stream_cut(error: httpx.TransportError, url: str, events: EventStream) -> LoopaiAPIError:
    """What a connection lost in the middle of a ``batch/run`` stream raises: ``STREAM_INTERRUPTED``
    with how many results had come (the items after them may not have been processed)."""
    return LoopaiAPIError(
        "STREAM_INTERRUPTED",
        f"the batch's stream from {url} was cut after {events.received:,} result(s) "
        f"({type(error).__name__}: {error}); the service may have stopped: send the items after those again",
    )


class EventStream:
    """Reads the Server-Sent Events of ``batch/run``: results, progress, the summary.

    :meth:`feed` takes bytes as they arrive and returns the results they completed;
    ``on_progress`` is called with each progress; ``summary`` is set by the ``done`` event; an
    ``error`` event raises :class:`LoopaiAPIError`.
    """

    def __init__(self, on_progress: Callable[[BatchRunProgress], None] | None) -> None:
        self.on_progress = on_progress
        self.progress: BatchRunProgress | None = None
        self.summary: BatchRunSummary | None = None
        self.received = 0
        """Results read so far."""
        self._pending = b""

    def feed(self, data: bytes) -> list[BatchRunResult]:
        """The results completed by ``data``."""
        text = self._pending + data
        if b"\r" in text:
            text = text.replace(b"\r\n", b"\n")
        blocks = text.split(b"\n\n")
        self._pending = blocks.pop()
        results = []
        validate = _RESULT.validate_json
        for block in blocks:
            # The service's result events: "id: N\nevent: result\ndata: <one line>", read without a loop.
            head, found, body = block.partition(_RESULT_DATA)
            if found and head.startswith(b"id: ") and b"\n" not in body:
                try:
                    results.append(validate(body))
                except ValidationError as exc:
                    raise LoopaiAPIError(
                        "INVALID_RESPONSE", f"a result event is not what the service sends: {exc}"
                    ) from None
                continue
            result = self._event(block)
            if result is not None:
                results.append(result)
        self.received += len(results)
        return results

    def finish(self) -> None:
        """The stream ended: raise unless its ``done`` event came."""
        if self._pending.strip():
            self.feed(b"\n\n")
        if self.summary is None:
            raise LoopaiAPIError("STREAM_INTERRUPTED", "the batch's stream ended before its summary")

    def _event(self, block: bytes) -> BatchRunResult | None:
        kind, data = "message", []
        for line in block.split(b"\n"):
            name, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if name == b"event":
                kind = value.decode("utf-8")
            elif name == b"data":
                data.append(value)
        if not data:
            return None  # a comment (keep-alive ping)
        body = b"\n".join(data)
        try:
            if kind == "result":
                return BatchRunResult.model_validate_json(body)
            if kind == "progress":
                self.progress = BatchRunProgress.model_validate_json(body)
                if self.on_progress is not None:
                    self.on_progress(self.progress)
            elif kind == "done":
                self.summary = BatchRunSummary.model_validate_json(body)
            elif kind == "error":
                error = ErrorBody.model_validate_json(body)
                raise LoopaiAPIError(error.code, error.message, details=error.details, trace_id=error.trace_id)
        except ValidationError as exc:
            raise LoopaiAPIError("INVALID_RESPONSE", f"a {kind} event is not what the service sends: {exc}") from None
        return None
