"""``--workers N``: uvicorn's supervisor of the worker processes, with a SIGHUP checked before it restarts them.

SIGHUP to the main process restarts the workers one by one (uvicorn's), each building its host from
the configuration afresh. A configuration no worker could start with (invalid TOML, a wrong value, a
plugin it names that cannot run) used to make each new worker die with a traceback. It is now found
first, by :func:`check_configuration` in a fresh process (so that it sees the plugins as installed
now, as a new worker would, not as the main process imported them at its start): the reload then
fails as it does with one process, in one line (``reload failed, nothing changed: loopai.toml:20:6:
...``), and the workers keep running with what they started with.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from multiprocessing.connection import Connection
from typing import Final

from uvicorn.supervisors import Multiprocess

from loopai._errors import LoopaiError
from loopai._log import captured_warnings, logger
from loopai.config import load_config
from loopai.host import ReloadResult
from loopai.serve._building import build_host
from loopai.serve._options import ServeOptions

__all__ = ["Supervisor", "check_configuration"]

log = logger("loopai.serve")

_CHECK_TIMEOUT: Final = 60.0
"""Seconds the check of the configuration may take; past them the workers are restarted all the same
(uvicorn keeps a worker whose replacement does not start)."""
_STOPPING: Final = frozenset({signal.SIGINT, signal.SIGTERM})


class Supervisor(Multiprocess):
    """uvicorn's :class:`~uvicorn.supervisors.Multiprocess`, which restarts the workers on SIGHUP only
    when the configuration checks out (see the module)."""

    def handle_hup(self) -> None:
        found = self._check()
        if found is None:
            return  # asked to stop meanwhile: the workers stop, no use restarting them
        problems, warnings = found
        if problems:
            log.warning("%s", ReloadResult(False, problems=tuple(problems)).summary())
            return
        for warning in warnings:  # the workers keep theirs to themselves: said once, here
            log.warning("%s", warning)
        super().handle_hup()

    def _check(self) -> tuple[list[str], list[str]] | None:
        """The problems a new worker would stop on and the warnings it would give, from
        :func:`check_configuration` in a fresh process; None when SIGTERM or SIGINT came meanwhile."""
        spawning = multiprocessing.get_context("spawn")
        receiving, sending = spawning.Pipe(duplex=False)
        checker = spawning.Process(target=check_configuration, args=(sending,), name="loopai-serve-check")
        checker.start()
        sending.close()
        deadline = time.monotonic() + _CHECK_TIMEOUT
        try:
            while not receiving.poll(0.1):
                if _STOPPING.intersection(getattr(self, "signal_queue", ())):
                    return None
                if time.monotonic() > deadline:
                    log.warning(
                        "the configuration was not checked within %g s: restarting the workers all the same",
                        _CHECK_TIMEOUT,
                    )
                    return [], []
            answer: tuple[list[str], list[str]] = receiving.recv()
            return answer
        except EOFError:
            return [f"the check of the configuration ended without an answer (exit status {checker.exitcode})"], []
        finally:
            receiving.close()
            if checker.is_alive():
                checker.kill()
            checker.join()


def check_configuration(answer: Connection) -> None:
    """In a process of its own: build the host as a worker would (``LOOPAI_SERVE_OPTIONS``, the
    configuration they name), close it, and send ``(problems, warnings)`` on ``answer``: what would
    stop a worker, one line each (empty when nothing would), and the warnings it would give."""
    options = ServeOptions.from_environ(os.environ)
    problems: list[str] = []
    with captured_warnings() as warnings:
        try:
            config = load_config(options.config)
            host = build_host(config, options, outcome="the workers were not restarted")
            host.close(drain_timeout=0)
        except LoopaiError as exc:
            problems = list(getattr(exc, "problems", None) or [str(exc)])
        except Exception as exc:  # noqa: BLE001 - a new worker would stop on it too: said, never a traceback
            problems = [f"a worker could not be built: {type(exc).__name__}: {exc}"]
    answer.send((problems, list(warnings)))
    answer.close()
