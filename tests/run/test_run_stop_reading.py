"""A Ctrl-C or a SIGTERM stops ``loopai run`` (one process) at once when it waits for input on a
pipe that stays open: reading ends, the records read are finished, the summary is printed; a line
half-read when the signal came is left out (never a malformed line)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


@pytest.mark.parametrize("concurrency", ["1", "4"])
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_the_wait_for_input_from_a_pipe_kept_open(
    tmp_path: Path, kit: Any, config: Any, signum: int, status: int, concurrency: str
) -> None:
    config(validators={"ok": "OutputIsOk"})
    output, said = tmp_path / "out.jsonl", tmp_path / "stderr.txt"
    records = "".join(json.dumps(kit.make_record()) + "\n" for _ in range(3))
    with said.open("w", encoding="utf-8") as stderr:
        process = kit.loopai_process(
            ["-", "--no-autoload", "--concurrency", concurrency, "-o", str(output)],
            cwd=tmp_path,
            env=kit.subprocess_env(tmp_path),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
        try:
            assert process.stdin is not None
            process.stdin.write(records + '{"execution": {"id": "half-')  # and the pipe stays open
            process.stdin.flush()
            # Each result is written as its record is done, without waiting for the pipe's next line.
            deadline = time.monotonic() + 60
            while len(_lines(output)) < 3 and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            written_while_waiting = len(_lines(output))
            time.sleep(0.3)  # the run is back in the read
            process.send_signal(signum)
            started = time.monotonic()
            process.wait(timeout=10)  # the producer never closes the pipe: not waited for
            took = time.monotonic() - started
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            assert process.stdin is not None
            process.stdin.close()
    stderr_text = said.read_text(encoding="utf-8")

    assert written_while_waiting == 3, stderr_text
    assert process.returncode == status, stderr_text
    assert took < 5, took
    assert "INTERRUPTED: reading stopped, the records read were finished" in stderr_text
    assert "Traceback" not in stderr_text
    lines = _lines(output)
    assert [line["line"] for line in lines] == [1, 2, 3]
    assert all(line["error"] is None for line in lines)  # the half line is not said to be malformed
