"""One worker process of an isolated plugin, as the host sees it: start it, call it, stop it, bury it.

The worker's standard output is the host's stderr: what the plugin prints never reaches the
host's stdout (``loopai run`` writes its results there); the host and the worker talk on pipes.

A worker that dies, runs out of memory or CPU time, or is killed at a timeout ends in a
:class:`~loopai.host._failures.WorkerLost` that says which; the pool replaces it. A worker killed
by a fatal signal (a segfault...) has its Python stack written by ``faulthandler`` to a file of
its own, unnamed, which the host reads once it died: the message names the line of the plugin's
module it crashed on.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from typing import IO, Any, Final

from loopai._isolation import where_written
from loopai._plugin import Plugin, validate_settings
from loopai.host._failures import WorkerLost, raised_in_worker
from loopai.host._process._codec import EXCEPTION, LOADED, MEMORY, START, STARTED, STARTUP, STOP, STOPPED
from loopai.host._process._frames import Closed, receive, send

__all__ = ["LOAD_TIMEOUT", "STOP_WAIT", "Handle", "Rebuild", "Recipe"]

LOAD_TIMEOUT: Final = 60.0
"""Seconds a new worker may take to start Python and build its plugin (before ``startup``)."""
STOP_WAIT: Final = 30.0
"""Seconds a worker without a timeout may take to start (when it was not yet) and run ``shutdown``."""
_MEMORY_EXIT: Final = 86  # the worker's exit status when it ran out of memory where it could not say so
_WAIT_FOR_EXIT: Final = 5.0
_CRASH_LOG_READ: Final = 1 << 16  # a faulthandler dump is a few kB: its newest frames come first
_SIGNAL_NAMES: Final = {
    getattr(signal, "SIGSEGV", -1): "SIGSEGV (a segmentation fault)",
    getattr(signal, "SIGBUS", -1): "SIGBUS (a bus error)",
    getattr(signal, "SIGABRT", -1): "SIGABRT (an abort)",
    getattr(signal, "SIGILL", -1): "SIGILL (an illegal instruction)",
    getattr(signal, "SIGFPE", -1): "SIGFPE (an arithmetic fault)",
    getattr(signal, "SIGKILL", -1): "SIGKILL (perhaps the kernel's out-of-memory killer)",
}


class Rebuild:
    """A plugin that could not be pickled, as its worker builds it again: its class and its settings."""

    def __init__(self, cls: type[Plugin], settings: Any) -> None:
        self.cls = cls
        self.settings = settings

    def build(self, name: str) -> Plugin:
        """The plugin, built as discovery builds an installed one (settings validated by its class)."""
        model = self.cls.Config
        return self.cls(validate_settings(model, self.settings, name) if model is not None else None)


class Recipe:
    """How to build one isolated plugin in a worker: its name, kind, limits and the plugin itself
    (a module's name, or the pickled object); ``home`` is the file of the plugin's module, if known
    (where a crash is looked for first)."""

    __slots__ = ("blob", "cpu_time_limit_s", "home", "kind", "memory_limit_mb", "module", "name")

    def __init__(
        self,
        name: str,
        kind: str,
        module: str | None,
        blob: bytes,
        memory_limit_mb: int | None,
        cpu_time_limit_s: float | None,
        home: str | None = None,
    ) -> None:
        self.name, self.kind, self.module, self.blob = name, kind, module, blob
        self.memory_limit_mb, self.cpu_time_limit_s = memory_limit_mb, cpu_time_limit_s
        self.home = home

    def start_frame(self, worker: int) -> bytes:
        header = {
            "name": self.name,
            "kind": self.kind,
            "module": self.module,
            "memory_limit_mb": self.memory_limit_mb,
            "cpu_time_limit_s": self.cpu_time_limit_s,
            "host_pid": os.getpid(),
            "worker": worker,
        }
        return START + json.dumps(header).encode() + b"\n" + self.blob


def _environment() -> dict[str, str]:
    # The worker imports what the host can: the host's sys.path, first (plugins on paths an
    # application added at run time included). Unbuffered, so that what a plugin prints
    # arrives when it prints it, not when its worker ends.
    paths = [p for p in sys.path if isinstance(p, str) and p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1"}


def _printed_to() -> int:
    """Where a worker's standard output goes: the host's stderr (file descriptor 2), else, when
    the host has none open, nowhere. The worker talks to the host on pipes of its own, never on
    stdout: what the plugin prints (``print``, native code, the processes it starts) is never
    mixed into the host's output."""
    try:
        os.fstat(2)
    except OSError:
        return subprocess.DEVNULL
    return 2


class Handle:
    """One worker process: spawned at construction, ready after :meth:`wait_ready`."""

    __slots__ = ("crash_log", "from_child", "index", "poller", "process", "ready", "recipe", "spawn_error", "to_child")

    def __init__(self, recipe: Recipe, index: int) -> None:
        self.recipe = recipe
        self.index = index
        self.ready = False
        self.process: subprocess.Popen[bytes] | None = None
        self.spawn_error: OSError | None = None
        self.to_child = self.from_child = -1
        self.crash_log = _crash_log()
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        fds = [request_read, reply_write]
        if self.crash_log is not None:
            fds.append(self.crash_log.fileno())
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "loopai.host._process", *map(str, fds)],
                pass_fds=fds,
                stdin=subprocess.DEVNULL,  # the host's input is the host's (loopai run - reads it)
                stdout=_printed_to(),  # the host's output is the host's (loopai run writes results there)
                env=_environment(),
            )
        except OSError as exc:
            self.spawn_error = exc
        finally:
            os.close(request_read)
            os.close(reply_write)
        self.to_child, self.from_child = request_write, reply_read
        self.poller = select.poll()
        self.poller.register(reply_read, select.POLLIN | select.POLLHUP | select.POLLERR)
        if self.spawn_error is None:
            with contextlib.suppress(OSError):  # it died at once: wait_ready says how
                send(self.to_child, recipe.start_frame(index))

    # -- talking to it ---------------------------------------------------------------------

    def wait_ready(self, startup_timeout: float | None) -> None:
        """Wait for the plugin to be built and its ``startup`` to return; raises what went wrong."""
        if self.spawn_error is not None:
            raise WorkerLost("crashed", f"could not start its worker process: {self.spawn_error}")
        self._expect(self._reply(LOAD_TIMEOUT, "to start its worker process"), LOADED)
        self._expect(self.roundtrip(STARTUP, startup_timeout, "for its startup hook"), STARTED)
        self.ready = True

    def roundtrip(self, payload: bytes, timeout: float | None, waiting: str = "") -> bytes:
        """Send one request and return the reply; raises :class:`WorkerLost` when the worker is lost."""
        try:
            send(self.to_child, payload)
        except OSError:
            raise self.lost() from None
        return self._reply(timeout, waiting)

    def stop(self, timeout: float | None) -> None:
        """Run the plugin's ``shutdown`` in the worker and let it end; raises what the hook raised.

        Without a timeout it still waits at most :data:`STOP_WAIT` seconds: a host that closes
        must not hang on a worker it can kill."""
        timeout = STOP_WAIT if timeout is None else timeout
        try:
            if not self.ready:
                self.wait_ready(timeout)
            self._expect(self.roundtrip(STOP, timeout, "for its shutdown hook"), STOPPED)
        finally:
            self.bury()

    def _reply(self, timeout: float | None, waiting: str) -> bytes:
        if timeout is not None and not self.poller.poll(max(timeout, 0.0) * 1000):
            self.kill()
            what = f" {waiting}" if waiting else ""
            raise WorkerLost(
                "timeout",
                f"took longer than its timeout of {timeout:g}s{what}; its worker process was killed and replaced",
            )
        try:
            reply = receive(self.from_child)
        except (Closed, OSError):
            raise self.lost() from None
        if reply[:1] == bytes([MEMORY]):
            self.kill()
            raise self._out_of_memory()
        return reply

    def _expect(self, reply: bytes, tag: int) -> None:
        if reply[:1] == bytes([tag]):
            return
        self.kill()
        if reply[:1] == bytes([EXCEPTION]):
            body = json.loads(reply[1:])
            raise raised_in_worker(body["type"], body["message"], body["traceback"])
        raise WorkerLost("crashed", f"its worker process answered {reply[:1]!r} out of turn; it was replaced")

    # -- its end ---------------------------------------------------------------------------

    def lost(self) -> WorkerLost:
        """What ended this worker, now that its pipe is closed."""
        status = self._wait()
        crashed_at = self._crashed_at() if status is not None and status < 0 else ""
        self.bury()
        if status == _MEMORY_EXIT:
            return self._out_of_memory()
        if status is not None and status < 0:
            number = -status
            if number == getattr(signal, "SIGXCPU", -2):
                limit = self.recipe.cpu_time_limit_s
                return WorkerLost(
                    "cpu-limit",
                    f"used more than its CPU time limit (cpu_time_limit_s = {limit:g}); its worker process "
                    "was stopped by SIGXCPU and replaced",
                )
            name = _SIGNAL_NAMES.get(number) or _signal_name(number)
            return WorkerLost(
                "crashed", f"crashed: its worker process was killed by {name}{crashed_at}; it was replaced"
            )
        how = "did not end" if status is None else f"exited with status {status}"
        return WorkerLost("crashed", f"crashed: its worker process {how} during the call (os._exit?); it was replaced")

    def _out_of_memory(self) -> WorkerLost:
        return WorkerLost(
            "memory-limit",
            f"ran out of memory (memory_limit_mb = {self.recipe.memory_limit_mb}); its worker process was replaced",
        )

    def abort(self) -> None:
        """End the worker at once (SIGKILL), from any thread, leaving its pipes open: the thread in a
        call on it sees the reply pipe close, and buries it."""
        if self.process is not None:
            self.process.kill()  # nothing when it ended already

    def kill(self) -> None:
        """End the worker at once (SIGKILL) and release its pipes."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        self.bury()

    def bury(self) -> int | None:
        """Wait for the worker to end, close the pipes and its crash log; its exit status (None: it
        never started)."""
        status = self._wait()
        for fd in (self.to_child, self.from_child):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.to_child = self.from_child = -1
        if self.crash_log is not None:
            with contextlib.suppress(OSError):
                self.crash_log.close()
            self.crash_log = None
        return status

    def _wait(self) -> int | None:
        """Wait for the worker to end (killing it when it takes long); its exit status."""
        if self.process is None:
            return None
        try:
            return self.process.wait(_WAIT_FOR_EXIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def _crashed_at(self) -> str:
        """`` at /path/plugin.py:50``: the innermost line of the plugin's module (else the innermost
        line) in the stack the dead worker's ``faulthandler`` wrote; nothing when it wrote none."""
        if self.crash_log is None:
            return ""
        try:
            dump = os.pread(self.crash_log.fileno(), _CRASH_LOG_READ, 0)
        except OSError:
            return ""
        where = where_written(dump.decode("utf-8", "replace"), self.recipe.home, newest_first=True)
        return f" at {where[0]}:{where[1]}" if where is not None else ""


def _crash_log() -> IO[bytes] | None:
    """A temporary file without a name, for a worker's ``faulthandler`` (None when none can be made:
    a crash is then said without its line)."""
    try:
        return tempfile.TemporaryFile(prefix="loopai-worker-")
    except OSError:
        return None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
