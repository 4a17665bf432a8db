"""Process isolation from async code: a call whose caller is cancelled kills its worker at once.

The call runs in a thread that cannot be interrupted; its worker is killed instead (and replaced),
so that the thread returns, the next call does not wait for the abandoned one, and closing the
host leaves no worker behind. The plugin is not at fault: it is neither reported nor disabled.
Every slow call here sleeps :data:`SLEEP` seconds in its worker; nothing waits anywhere near that.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import loopai
from loopai.host._process import TRIP_AFTER
from loopai.host._process._pool import Ticket

pytestmark = pytest.mark.processes

SLEEP = 60
"""Seconds a slow call sleeps in its worker."""
PROMPT = 20
"""Seconds well under SLEEP: anything that waited for a slow call would take longer (a loaded machine would not)."""


def slow_plugin(plugin_module: Any, tmp_path: Path) -> Any:
    """A module whose ``Slow`` validator answers with its pid, or, given a path as its input, writes
    its pid there and sleeps; every process that imports the module (each worker) logs its pid."""
    return plugin_module(
        f"""
        with open({str(tmp_path / "imported-by.txt")!r}, "a") as log:
            log.write(f"{{os.getpid()}}\\n")


        class Slow(loopai.ValidatorPlugin):
            isolation = "process"
            workers = 1

            def validate(self, execution, context):
                if execution.input:
                    with open(execution.input + ".part", "w") as marker:
                        marker.write(str(os.getpid()))
                    os.replace(execution.input + ".part", execution.input)
                    time.sleep({SLEEP})
                return valid(self.name, pid=os.getpid())
        """
    )


def record(what: Any = None) -> loopai.ExecutionRecord:
    return loopai.ExecutionRecord(program_id=uuid.uuid4(), task_id=uuid.uuid4(), input=what)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def workers_started(tmp_path: Path) -> set[int]:
    """The pids of the worker processes that imported the plugin's module (not the test's own)."""
    return {int(pid) for pid in (tmp_path / "imported-by.txt").read_text().split()} - {os.getpid()}


async def started(marker: Path) -> int:
    """The pid of the worker that took the slow call writing ``marker``, once it did."""
    deadline = time.monotonic() + PROMPT
    while not marker.exists():
        assert time.monotonic() < deadline, "the slow call never started"
        await asyncio.sleep(0.01)
    return int(marker.read_text())


async def pid_of(host: loopai.Host) -> int:
    report = await host.avalidate(record())
    assert report.is_valid and not report.failures, report
    return int(report.results[0].metadata["pid"])


def test_a_cancelled_call_kills_its_worker_and_the_next_call_does_not_wait(plugin_module, hosts, tmp_path) -> None:
    host = hosts(slow_plugin(plugin_module, tmp_path).Slow(name="slow")).start()

    async def main() -> tuple[list[int], list[int], float]:
        first = await pid_of(host)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(host.avalidate(record(str(tmp_path / "timed-out"))), 2.0)
        started_at = time.monotonic()
        after = await pid_of(host)
        waited = time.monotonic() - started_at
        # More cancellations in a row than the losses that disable a plugin, without a call between.
        cancelled = [int((tmp_path / "timed-out").read_text())]
        for n in range(TRIP_AFTER + 1):
            marker = tmp_path / f"cancelled-{n}"
            call = asyncio.ensure_future(host.avalidate(record(str(marker))))
            cancelled.append(await started(marker))
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
        return [first, after], cancelled, waited

    [first, after], cancelled, waited = asyncio.run(main())

    assert waited < PROMPT  # not the slow call's SLEEP
    assert cancelled[0] == first and after != first  # the timed-out call's worker was replaced...
    assert not alive(first)  # ...and is gone
    assert len(set(cancelled[1:])) == TRIP_AFTER + 1 and after == cancelled[1]  # a new worker each time
    report = host.validate(record())
    assert report.is_valid and not report.failures  # not disabled: a cancellation is not the plugin's fault
    assert report.results[0].metadata["pid"] not in cancelled
    assert host.problems == []
    assert not any(alive(pid) for pid in cancelled)


def test_closing_after_a_cancelled_call_leaves_no_worker_and_asyncio_run_returns(
    plugin_module, hosts, tmp_path
) -> None:
    host = hosts(slow_plugin(plugin_module, tmp_path).Slow(name="slow"))
    marker = tmp_path / "cancelled"

    async def main() -> int:
        async with host:
            await pid_of(host)
            call = asyncio.ensure_future(host.avalidate(record(str(marker))))
            pid = await started(marker)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
        return pid

    started_at = time.monotonic()
    pid = asyncio.run(main())  # waits for the threads of the default executor: none is in a call

    assert time.monotonic() - started_at < PROMPT
    assert pid in workers_started(tmp_path)
    assert not any(alive(worker) for worker in workers_started(tmp_path))


def test_sync_calls_and_async_calls_not_cancelled_keep_their_worker_and_losses_still_count(
    plugin_module, hosts, tmp_path
) -> None:
    slow = slow_plugin(plugin_module, tmp_path).Slow(name="slow")
    slow.timeout = 1.0
    host = hosts(slow).start()

    pids = [host.validate(record()).results[0].metadata["pid"] for _ in range(2)]
    pids.append(asyncio.run(pid_of(host)))
    assert len(set(pids)) == 1

    # A call past its timeout loses its worker, from sync or async code: the plugin's failure, counted.
    problems = []
    for n in range(TRIP_AFTER):
        what = record(str(tmp_path / f"timeout-{n}"))
        report = host.validate(what) if n % 2 else asyncio.run(host.avalidate(what))
        problems.append(report.failures[0].problem)

    assert problems == ["timeout"] * TRIP_AFTER
    [reason] = host.problems
    assert reason.startswith(f"validator 'slow' was disabled after {TRIP_AFTER} calls in a row lost its worker")


class _Worker:
    """Stands in for a worker's handle: says whether it was killed."""

    aborted = False

    def abort(self) -> None:
        self.aborted = True


def test_a_ticket_kills_the_worker_only_while_it_does_the_call() -> None:
    done, doing, waiting = _Worker(), _Worker(), _Worker()

    finished = Ticket()
    assert finished.begin(done)
    assert not finished.end()
    finished.abandon()  # the call was over: its worker went back to the pool, to other calls

    running = Ticket()
    assert running.begin(doing)
    running.abandon()

    abandoned_first = Ticket()
    abandoned_first.abandon()

    assert (done.aborted, doing.aborted) == (False, True)
    assert running.end()  # the call's thread learns why its worker died
    assert not abandoned_first.begin(waiting)  # the call does not start
    assert not waiting.aborted
