"""The OpenAPI document at ``/openapi.json``: what FastAPI writes, plus the bodies of the routes that read
their request themselves (an NDJSON stream, a signed webhook delivery must be read as bytes), and
the API key schemes of the protected routes (checked by one plain dependency, see ``_deps``).

Those routes declare their body with :func:`request_body`; :func:`install_openapi` adds the models'
schemas to the document's components once, when it is first asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from loopai._wire import BatchRunItem

__all__ = ["install_openapi", "request_body"]

_REF: Final = "#/components/schemas/{model}"
_SCHEMES: Final = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API key>"},
    "api_key": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
}
_PROTECTED: Final = "/api/v1/"
_OPEN: Final = ("/api/v1/health/", "/api/v1/webhooks/")
"""Health probes need no key; webhook deliveries are authenticated by their signature."""


def request_body(model: type[BaseModel], *, ndjson: bool = False) -> dict[str, Any]:
    """``openapi_extra`` for a route whose JSON body is ``model`` (and, with ``ndjson``, whose
    NDJSON body is one ``BatchRunItem`` per line)."""
    content: dict[str, Any] = {"application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}}
    if ndjson:
        content["application/x-ndjson"] = {"schema": {"$ref": _REF.format(model=BatchRunItem.__name__)}}
    return {"requestBody": {"required": True, "content": content}}


def install_openapi(app: FastAPI, models: Sequence[type[BaseModel]]) -> None:
    """Make ``app``'s document include ``models`` among its schemas (built once, then kept)."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                separate_input_output_schemas=False,
            )
            _, extra = models_json_schema([(model, "validation") for model in models], ref_template=_REF)
            components = schema.setdefault("components", {})
            schemas = components.setdefault("schemas", {})
            for name, definition in extra.get("$defs", {}).items():
                schemas.setdefault(name, definition)
            components["securitySchemes"] = _SCHEMES
            for path, operations in schema.get("paths", {}).items():
                if path.startswith(_PROTECTED) and not path.startswith(_OPEN):
                    for operation in operations.values():
                        operation["security"] = [{name: []} for name in _SCHEMES]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]
