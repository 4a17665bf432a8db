"""Plugins that fork, leak threads or block their event loop, run for real through ``loopai run`` processes.

Each plugin is configured by factory from a real module; the command runs as its own process,
so what a forked child or a leftover thread does to the process is what a user would see.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

HOSTILE = """
import asyncio
import os
import sys
import threading
import time

import loopai


class ForkThenExit(loopai.ValidatorPlugin):
    '''Forks; the child calls sys.exit(0), as a daemonising helper would.'''

    def validate(self, execution, context):
        pid = os.fork()
        if pid == 0:
            sys.exit(0)
        os.waitpid(pid, 0)
        return loopai.ValidationResult(is_valid=True, validator_type="fork-then-exit")


class ForkThenReturn(loopai.ValidatorPlugin):
    '''Forks; the child forgets to leave and returns a result of its own.'''

    def validate(self, execution, context):
        pid = os.fork()
        if pid == 0:
            return loopai.ValidationResult(is_valid=False, validator_type="the-child")
        os.waitpid(pid, 0)
        return loopai.ValidationResult(is_valid=True, validator_type="fork-then-return")


def poll_forever():
    while True:
        time.sleep(0.05)


class LeakyThread(loopai.ValidatorPlugin):
    '''Starts a non-daemon thread and never stops it.'''

    def startup(self, host):
        threading.Thread(target=poll_forever, name="leaky-poller").start()

    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type="leaky")


class LeakyTimer(loopai.ValidatorPlugin):
    '''Starts a timer (a non-daemon thread) due in an hour, and never cancels it.'''

    def startup(self, host):
        timer = threading.Timer(3600, poll_forever)
        timer.name = "leaky-timer"
        timer.start()

    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type="leaky")


class LeakyPool(loopai.ValidatorPlugin):
    '''Gives a thread pool a task that never ends, and never shuts the pool down.'''

    def startup(self, host):
        import concurrent.futures

        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="leaky-pool")
        self.pool.submit(poll_forever)

    def validate(self, execution, context):
        return loopai.ValidationResult(is_valid=True, validator_type="leaky")


class Crashes(loopai.ValidatorPlugin):
    '''Crashes the process in native code (reads address 0), as a broken C extension would.'''

    def validate(self, execution, context):
        import ctypes

        ctypes.string_at(0)


class BlocksItsLoop(loopai.ValidatorPlugin):
    '''An async hook that blocks the event loop for 1 s (time.sleep instead of await).'''

    timeout = 0.5

    async def validate(self, execution, context):
        time.sleep(1.0)
        return loopai.ValidationResult(is_valid=True, validator_type="blocks-its-loop")
"""


@pytest.fixture
def hostile(tmp_path: Path, plugins: str) -> str:
    """The name of a module of the hostile plugins above, importable by ``loopai`` processes."""
    name = f"hostile_plugins_{uuid.uuid4().hex[:8]}"
    (tmp_path / "modules" / f"{name}.py").write_text(HOSTILE, encoding="utf-8")
    return name


def run(
    tmp_path: Path, kit: Any, module: str, validator: str, *args: str, records: int = 3
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "loopai.toml").write_text(
        textwrap.dedent(
            f"""
            autoload = false
            [plugins.validators.{validator.lower()}]
            factory = "{module}:{validator}"
            """
        ),
        encoding="utf-8",
    )
    data = kit.write_lines(tmp_path / "records.jsonl", [kit.make_record() for _ in range(records)])
    return subprocess.run(
        [sys.executable, "-m", "loopai", "run", str(data), *args],
        env=kit.subprocess_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
@pytest.mark.parametrize("validator", ["ForkThenExit", "ForkThenReturn"])
def test_a_child_a_plugin_forks_never_runs_the_hosts_work(
    tmp_path: Path, kit: Any, hostile: str, validator: str
) -> None:
    done = run(tmp_path, kit, hostile, validator)

    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 3  # one result line per record: no child went on with the input
    assert all('"is_valid":true' in line and "the-child" not in line for line in lines)


@pytest.mark.parametrize("workers", ["1", pytest.param("2", marks=pytest.mark.processes)])
def test_a_leaked_non_daemon_thread_does_not_keep_loopai_run_from_ending(
    tmp_path: Path, kit: Any, hostile: str, workers: str
) -> None:
    done = run(tmp_path, kit, hostile, "LeakyThread", "--workers", workers)

    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 3
    assert (
        f"warning: plugin validator 'leakythread' left thread 'leaky-poller' running (started by "
        f"{hostile}.poll_forever); loopai exits without waiting for it: stop it in the plugin's shutdown(), or make "
        "it a daemon thread"
    ) in done.stderr


@pytest.mark.parametrize(("validator", "thread"), [("LeakyTimer", "leaky-timer"), ("LeakyPool", "leaky-pool_0")])
def test_a_thread_the_standard_library_runs_for_a_plugin_is_named_after_the_plugin(
    tmp_path: Path, kit: Any, hostile: str, validator: str, thread: str
) -> None:
    # A Timer's thread runs threading's code, a pool's worker concurrent.futures': the warning
    # names the plugin's function they run, and so the plugin.
    done = run(tmp_path, kit, hostile, validator)

    assert done.returncode == 0, done.stderr
    assert (
        f"warning: plugin validator {validator.lower()!r} left thread {thread!r} running (started by "
        f"{hostile}.poll_forever); loopai exits"
    ) in done.stderr


@pytest.mark.parametrize("concurrency", ["1", "4"])
def test_an_async_hook_that_blocks_its_loop_past_its_timeout_is_a_timeout_at_any_concurrency(
    tmp_path: Path, kit: Any, hostile: str, concurrency: str
) -> None:
    done = run(tmp_path, kit, hostile, "BlocksItsLoop", "--concurrency", concurrency, records=2)

    assert done.returncode == 0, done.stderr
    results = [json.loads(line)["validation"] for line in done.stdout.splitlines()]
    assert [r["is_valid"] for r in results] == [False, False]
    for result in results:
        [verdict] = result["results"]
        assert verdict["message"].startswith("validator 'blocksitsloop' took longer than its timeout of 0.5s")


@pytest.mark.parametrize("workers", ["1", pytest.param("2", marks=pytest.mark.processes)])
def test_a_plugin_that_crashes_the_process_is_named_by_the_stack_it_leaves(
    tmp_path: Path, kit: Any, hostile: str, workers: str
) -> None:
    done = run(tmp_path, kit, hostile, "Crashes", "--workers", workers)

    assert done.returncode != 0
    assert "Fatal Python error: Segmentation fault" in done.stderr
    assert f'{hostile}.py", line ' in done.stderr and " in validate" in done.stderr  # the plugin's own frame
    if workers == "2":  # the parent lives on to say what happened, and how to keep it from happening
        assert "was killed by SIGSEGV (it crashed, as native code in a plugin can" in done.stderr
        assert 'isolation = "process"' in done.stderr
