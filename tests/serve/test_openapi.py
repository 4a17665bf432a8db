"""The OpenAPI document at ``/openapi.json``, tested with schemathesis against a real service with API keys:
no generated request, however odd, makes the service fail (5xx), and every answer matches the
document (status codes, content types, bodies, headers) and keys are enforced where it says.

Left out: schemathesis's ``negative_data_rejection``, which expects a request the schema would
refuse to be refused; the service parses as pydantic does, leniently on purpose (a timestamp as a
number of seconds, ``"5"`` for 5), as upstream producers send them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.serve

KEY = "schemathesis-key-1"


def _schemathesis() -> str:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    if found is None:
        pytest.skip("schemathesis is not installed")
    return found


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
