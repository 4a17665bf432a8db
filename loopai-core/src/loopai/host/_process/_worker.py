"""The worker process of an isolated plugin: ``python -m loopai.host._process READ_FD WRITE_FD [CRASH_FD]``.

It reads requests from the host on one pipe and answers on the other (see ``_codec``): it
builds the plugin (a module is imported; anything else arrives pickled), takes its resource
limits, runs the plugin's ``startup``, then answers hook calls until it is told to stop (it
runs ``shutdown`` then) or the host goes away. Whatever the plugin does to this process (a
segfault, ``os._exit``, running out of memory or CPU time) ends this process only; the host
sees it and starts another. On a fatal signal ``faulthandler`` writes the Python stack to
``CRASH_FD``, a file the host reads to say where the plugin crashed.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import importlib
import inspect
import json
import math
import os
import pickle
import signal
import sys
import threading
import time
from typing import Any, Final

from loopai._isolation import watch_forks
from loopai.host._failures import what_returned, wrong_result
from loopai.host._process._codec import (
    CALL,
    LOADED,
    MEMORY,
    RESULT,
    RESULTS,
    START,
    STARTED,
    STARTUP,
    STOP,
    STOPPED,
    WRONG,
    Decoder,
    describe_exception,
    to_json,
)
from loopai.host._process._frames import Closed, receive, send
from loopai.host._process._handle import Rebuild
from loopai.registry import PluginRegistry

__all__ = ["WorkerHost", "main"]

_MEMORY_EXIT: Final = 86
"""The exit status of a worker that ran out of memory where it could not even say so."""


class WorkerHost:
    """What an isolated plugin's ``startup`` and ``shutdown`` receive as ``host`` in its worker.

    The host itself stays in its own process: this says which plugin and worker this is
    (``plugin``, ``kind``, ``worker``: its index in the pool) and which process started it
    (``host_pid``); ``isolated`` is True.
    """

    isolated = True

    def __init__(self, plugin: str, kind: str, worker: int, host_pid: int) -> None:
        self.plugin = plugin
        self.kind = kind
        self.worker = worker
        self.host_pid = host_pid

    def __repr__(self) -> str:
        return f"<WorkerHost of {self.kind} {self.plugin!r}, worker {self.worker}, host pid {self.host_pid}>"


class _Serving:
    """One worker's state: the plugin's registry entry, its limits, its event loop."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.entry: Any = None
        self.host: WorkerHost | None = None
        self.cpu_limit: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._decode = Decoder()

    def reply(self, payload: bytes) -> None:
        send(self.write_fd, payload)

    def settle(self, value: Any) -> Any:
        """``value``, awaited on this worker's own event loop when it is awaitable."""
        if not inspect.isawaitable(value):
            return value
        if self._loop is None:
            self._loop = asyncio.new_event_loop()

        async def wait() -> Any:
            return await value

        return self._loop.run_until_complete(wait())

    # -- start, calls, stop -------------------------------------------------------------

    def load(self, frame: bytes) -> bool:
        """Build the plugin and take the limits; False when that failed (and was said)."""

        header_line, _, blob = frame[1:].partition(b"\n")
        header = json.loads(header_line)
        _watch_host(int(header["host_pid"]))
        try:
            plugin = importlib.import_module(header["module"]) if header["module"] else pickle.loads(blob)
            if isinstance(plugin, Rebuild):
                plugin = plugin.build(header["name"])
            [self.entry] = PluginRegistry().register(plugin, name=header["name"], kinds=(header["kind"],))
            _limit_memory(header["memory_limit_mb"])
        except BaseException as exc:  # noqa: BLE001 - told to the host, which names the plugin
            self.reply(describe_exception(exc))
            return False
        self.cpu_limit = header["cpu_time_limit_s"]
        self.host = WorkerHost(header["name"], header["kind"], int(header["worker"]), int(header["host_pid"]))
        self.reply(bytes([LOADED]))
        return True

    def startup(self) -> None:
        """Run the plugin's ``startup`` and say how it went."""
        self._lifecycle("startup", STARTED)

    def _lifecycle(self, hook: str, done: int) -> bool:

        function = getattr(self.entry, hook)
        try:
            if function is not None:
                self.settle(function(self.host))
        except MemoryError:
            self._out_of_memory()
        except BaseException as exc:  # noqa: BLE001 - told to the host, which names the plugin
            self.reply(describe_exception(exc))
            return False
        self.reply(bytes([done]))
        return True

    def call(self, frame: bytes) -> None:
        """Answer one hook call."""

        try:
            code, first, second = self._decode(frame)
            expected = RESULTS[code]
            if self.cpu_limit is not None:
                _limit_cpu(self.cpu_limit)
            result = self.settle(self.entry.call(first, second))
        except MemoryError:
            self._out_of_memory()
        except BaseException as exc:  # noqa: BLE001 - the plugin's failure, told to the host
            self.reply(describe_exception(exc))
            return
        if expected is None:  # a handler: what it returned anyway is named, for the host to warn about
            self.reply(bytes([RESULT]) if result is None else bytes([WRONG]) + what_returned(result).encode())
        elif isinstance(result, expected):
            self.reply(bytes([RESULT]) + to_json(result))
        else:
            self.reply(bytes([WRONG]) + wrong_result(result).encode())

    def stop(self) -> None:
        """Run ``shutdown`` and say so (the host then waits for this process to end)."""

        self._lifecycle("shutdown", STOPPED)

    def _out_of_memory(self) -> None:

        # Whatever the plugin held is garbage now: enough to say so, then end (the host replaces us).
        try:
            self.reply(bytes([MEMORY]) + b"MemoryError")
        finally:
            os._exit(_MEMORY_EXIT)


def _limit_memory(megabytes: int | None) -> None:
    if megabytes is None:
        return
    import resource

    limit = megabytes * 1024 * 1024
    used = _address_space()
    if used is not None and used >= limit:
        raise MemoryError(
            f"memory_limit_mb = {megabytes} is below what the worker process already uses "
            f"({math.ceil(used / 1024 / 1024)} MB: the interpreter and the plugin's imports); raise it"
        )
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _address_space() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None  # not Linux: the limit is set unchecked


def _limit_cpu(seconds: float) -> None:
    # RLIMIT_CPU counts the whole process's life in whole seconds: before each call, allow
    # what was used so far plus this call's allowance. Past it the kernel sends SIGXCPU.
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + seconds)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _watch_host(host_pid: int) -> None:
    """End this process when the host is gone, even while a plugin call hangs (the pipe's
    end of file is only seen between calls)."""

    def watch() -> None:
        while os.getppid() == host_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="loopai-worker-watchdog", daemon=True).start()


def _quiet_signals() -> None:
    # Ctrl-C reaches the whole process group, and so does a SIGTERM sent to it (timeout, systemd):
    # the host decides what they stop, and ends this worker itself (a closed pipe ends it too).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash leaves no core file behind


def _dump_crashes(crash_fd: int) -> None:
    # This thread's stack only: the one that received the fatal signal, not the watchdog's.
    with contextlib.suppress(OSError, ValueError):
        faulthandler.enable(file=crash_fd, all_threads=False)


def main(argv: list[str] | None = None) -> None:
    """Serve one plugin over the pipes named by ``argv`` (read fd, write fd) until told to stop;
    a third fd, when given, is where ``faulthandler`` writes the stack of a crash."""

    args = sys.argv if argv is None else argv
    read_fd, write_fd = int(args[1]), int(args[2])
    if len(args) > 3:
        _dump_crashes(int(args[3]))
    _quiet_signals()
    watch_forks()
    serving = _Serving(read_fd, write_fd)
    try:
        frame = receive(read_fd)
        if frame[:1] != START or not serving.load(frame):
            return
        while True:
            frame = receive(read_fd)
            head = frame[:1]
            if head == CALL:
                serving.call(frame)
            elif head == STARTUP:
                serving.startup()
            elif head == STOP:
                serving.stop()
                return
    except (Closed, BrokenPipeError):
        return  # the host went away: nothing left to answer
