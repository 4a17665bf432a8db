"""How routes answer: JSON bytes written once (no second validation of what the host returned), and
the error answers every protected route may give, for the OpenAPI document."""

from __future__ import annotations

import json
from typing import Any, Final

from starlette.responses import Response

from loopai._models import ValidationResult
from loopai._report import SamplingReport, ValidationReport
from loopai._wire import ErrorBody

__all__ = ["ERRORS", "PUBLIC_ERRORS", "json_answer", "report_answer"]

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_RESULT: Final = ValidationResult.__pydantic_serializer__


def json_answer(content: Any, status: int = 200) -> Response:
    """``content`` (JSON-ready) as an ``application/json`` response."""
    return Response(_encode(content).encode("utf-8"), status, media_type="application/json")


def report_answer(report: ValidationReport | SamplingReport) -> Response:
    """A validation or sampling report as its JSON answer (its ``to_dict()`` form).

    A valid report with no failures, the common case, is assembled from its results serialised by
    pydantic directly: the dict detour costs as much as the validators (see docs/PERFORMANCE.md).
    """
    if isinstance(report, ValidationReport) and not report.failures:
        results = b",".join([_RESULT.to_json(result) for result in report.results])
        valid = b"true" if report.is_valid else b"false"
        stopped = b"true" if report.stopped_early else b"false"
        body = (
            b'{"is_valid":' + valid + b',"results":[' + results + b'],"failures":[],"stopped_early":' + stopped + b"}"
        )
        return Response(body, media_type="application/json")
    return json_answer(report.to_dict())


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


PUBLIC_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    413: _error("The body is larger than max_body_mb, or a JSON batch has more than max_batch_items items"),
    422: _error("Malformed JSON, or a field that is missing or wrong (details.errors names each)"),
    500: _error("The service failed (the trace id is in its log)"),
}
"""What a route that anyone may call can answer besides success."""

ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    401: _error("No API key, or an unknown one"),
    **PUBLIC_ERRORS,
    503: _error("The service is starting or stopping"),
}
"""What a route behind the API keys can answer besides success."""
