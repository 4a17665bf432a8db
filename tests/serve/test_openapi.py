"""The OpenAPI document at ``/openapi.json``, tested with schemathesis against a real service with API keys:
no generated request, however odd, makes the service fail (5xx), and every answer matches the
document (status codes, content types, bodies, headers) and keys are enforced where it says. And
every ``$ref`` in the document names something the document has (a client generator fails on one
that does not).

Left out: schemathesis's ``negative_data_rejection``, which expects a request the schema would
refuse to be refused; the service parses as pydantic does, leniently on purpose (a timestamp as a
number of seconds, ``"5"`` for 5), as upstream producers send them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.serve

KEY = "schemathesis-key-1"


def _schemathesis() -> str:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    if found is None:
        pytest.skip("schemathesis is not installed")
    return found


def _refs(node: Any, where: str = "#") -> list[tuple[str, str]]:
    """Every ``$ref`` under ``node``, with where it is (a JSON pointer)."""
    if isinstance(node, dict):
        found = [(where, node["$ref"])] if isinstance(node.get("$ref"), str) else []
        for key, value in node.items():
            found += _refs(value, f"{where}/{key}")
        return found
    if isinstance(node, list):
        return [ref for n, value in enumerate(node) for ref in _refs(value, f"{where}/{n}")]
    return []


def _resolves(document: dict[str, Any], ref: str) -> bool:
    if not ref.startswith("#/"):
        return False  # the document is self-contained: nothing refers outside it
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_every_ref_in_the_document_resolves(server):
    document = httpx.get(server.url + "/openapi.json").json()
    refs = _refs(document)
    assert len(refs) > 50  # the walk reached the whole document
    assert [(where, ref) for where, ref in refs if not _resolves(document, ref)] == []
    schemas = document["components"]["schemas"]
    assert {"WebhookEvent", "EventSeverity", "WebhookEventType", "InboundDelivery"} <= schemas.keys()


def test_no_generated_request_makes_the_service_fail_and_every_answer_is_documented(tmp_path, kit):
    command = _schemathesis()
    server = kit.launch(tmp_path / "api", config=kit.standard_config(serve={"api_keys": [KEY]}))
    try:
        done = subprocess.run(
            [
                command,
                "run",
                server.url + "/openapi.json",
                "--checks",
                "all",
                "--exclude-checks",
                "negative_data_rejection",
                "--max-examples",
                "25",
                "--seed",
                "20261205",
                "--no-color",
                "-H",
                f"Authorization: Bearer {KEY}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "Server error" not in done.stdout
    assert KEY not in server.log
