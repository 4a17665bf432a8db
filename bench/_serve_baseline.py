"""The baseline of the service benchmark: the least FastAPI app that validates the same record against the
same schema with ``jsonschema`` and returns the same verdict. Run by uvicorn as ``loopai serve`` is."""

from __future__ import annotations

from typing import Any

from _contenders import OUTPUT_SCHEMA  # the task's output schema, the one loopai serve gets in its tasks file
from fastapi import FastAPI
from jsonschema import Draft202012Validator


def create_app() -> FastAPI:
    """``POST /validate`` ``{"execution": {...}}`` -> ``{"is_valid": ...}``."""
    app = FastAPI()
    validator = Draft202012Validator(OUTPUT_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)

    @app.post("/validate")
    async def validate(body: dict[str, Any]) -> dict[str, Any]:
        return {"is_valid": validator.is_valid(body["execution"]["output"])}

    return app
