"""The API key gate: every ``/api/v1/*`` route but the health probes needs a key, when the service has
keys, and a ready service.

A middleware rather than a dependency each route must remember: the rule is the path's, so a
route added later, or a path that does not exist, is covered too (an unknown path answers 401 to a
caller without a key, not 404). Inbound webhook deliveries are authenticated by their signature
instead (upstream's sender has no key). The caller's identity is left in ``request.state.caller``.
"""

from __future__ import annotations

from typing import Any, Final

from loopai.serve._errors import ApiError, error_response, trace_id_of
from loopai.serve._security import ANONYMOUS
from loopai.serve._service import Service

__all__ = ["KeyGate", "header"]

_PROTECTED: Final = "/api/v1/"
_OPEN: Final = ("/api/v1/health/", "/api/v1/webhooks/")
_REFUSED: Final = {"WWW-Authenticate": 'Bearer realm="loopai"'}
_REFUSAL: Final = "authentication required: send Authorization: Bearer <key> or X-Api-Key: <key>"
"""The same whatever was wrong (no key, a wrong one, a malformed header): it says how, never which."""


def header(scope: dict[str, Any], name: bytes) -> str | None:
    """The value of header ``name`` (lower case) in an ASGI scope, or None."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class KeyGate:
    """ASGI middleware: 401 ``UNAUTHORIZED`` without a known key, 503 ``NOT_READY`` before the service
    is ready, for the protected paths."""

    def __init__(self, app: Any, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(_PROTECTED) and not path.startswith(_OPEN):
            refusal = self._refusal(scope)
            if refusal is not None:
                answer = error_response(
                    refusal.status_code,
                    refusal.code,
                    refusal.message,
                    trace_id=trace_id_of(
                        {
                            "traceparent": header(scope, b"traceparent") or "",
                            "x-request-id": header(scope, b"x-request-id") or "",
                        }
                    ),
                    headers=refusal.headers,
                )
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: dict[str, Any]) -> ApiError | None:
        service = self.service
        caller = ANONYMOUS
        if service.keys.required:
            found = service.keys.authenticate(header(scope, b"authorization"), header(scope, b"x-api-key"))
            if found is None:
                return ApiError(401, "UNAUTHORIZED", _REFUSAL, headers=_REFUSED)
            caller = found
        if not service.ready_for_work:
            return service.not_ready()
        scope.setdefault("state", {})["caller"] = caller
        return None
