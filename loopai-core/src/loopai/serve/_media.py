"""The media types the service reads: JSON documents, and JSON Lines on the endpoint that streams them."""

from __future__ import annotations

from typing import Final

__all__ = ["STREAMED_UPLOADS", "is_ndjson"]

STREAMED_UPLOADS: Final = frozenset({"/api/v1/batch/run"})
"""Paths that read an NDJSON body line by line."""

_NDJSON: Final = (
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/jsonlines",
    "application/x-jsonlines",
)


def is_ndjson(content_type: str) -> bool:
    """Whether a ``Content-Type`` names newline-delimited JSON."""
    return content_type.split(";", 1)[0].strip().lower() in _NDJSON
