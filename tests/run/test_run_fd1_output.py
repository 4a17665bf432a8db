"""What a plugin writes straight to file descriptor 1 (``os.write(1, ...)``, a process it starts,
native code) never reaches ``loopai run``'s stdout in one process: fd 1 is stderr's for the run,
and the results (or the ``--json`` summary, with ``--output``) go to a copy of the standard output.

Each test runs ``loopai run`` as a process (and the plugin starts one): marked ``processes``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.processes

RAW = '''
import os
import subprocess
import sys
import loopai

os.write(1, b"raw: imported\\n")


class Raw(loopai.ValidatorPlugin):
    """Writes to fd 1 itself, and has a process do so too; valid."""

    def startup(self, host):
        subprocess.run([sys.executable, "-c", "print('raw: from a subprocess')"], check=True)

    def validate(self, execution, context):
        os.write(1, b"raw: validated " + str(execution.id).encode() + b"\\n")
        return loopai.ValidationResult(is_valid=True, validator_type="raw")

    def shutdown(self):
        os.write(1, b"raw: stopped\\n")
'''

RECORDS = 5


def _run(tmp_path: Path, kit: Any, *flags: str) -> subprocess.CompletedProcess[str]:
    kit.validator_module(tmp_path, RAW, "raw", "Raw")
    source = kit.write_lines(tmp_path / "in.jsonl", [kit.make_record() for _ in range(RECORDS)])
    return kit.run_process(tmp_path, str(source), "--no-autoload", *flags)


def _written_on_stderr(stderr: str) -> None:
    for said in ("raw: imported", "raw: from a subprocess", "raw: stopped"):
        assert said in stderr, stderr
    assert stderr.count("raw: validated") == RECORDS, stderr


@pytest.mark.parametrize("flags", [(), ("-o", "-")])
def test_what_a_plugin_writes_to_fd_1_goes_to_stderr(tmp_path: Path, kit: Any, flags: tuple[str, ...]) -> None:
    done = _run(tmp_path, kit, *flags)

    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]  # every line is a result
    assert [line["line"] for line in lines] == list(range(1, RECORDS + 1))
    assert "raw:" not in done.stdout
    _written_on_stderr(done.stderr)


def test_the_json_summary_is_not_corrupted_by_what_a_plugin_writes_to_fd_1(tmp_path: Path, kit: Any) -> None:
    done = _run(tmp_path, kit, "-o", "out.jsonl", "--json")

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["records"] == RECORDS  # the whole of stdout is the summary
    results = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert len([json.loads(line) for line in results]) == RECORDS
    _written_on_stderr(done.stderr)
