"""What makes a long-running host reload: SIGHUP, and its configuration file changing.

Neither reloads in place. A signal handler runs in the main thread between two bytecodes,
possibly in the middle of a host call that a reload would then wait for; a watcher must not
hold up its polling. Both only ask a :class:`Reloads` worker thread, which runs one reload at
a time and folds requests that arrive meanwhile into one more.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from loopai._log import logger
from loopai.config import LoopaiConfig
from loopai.host._changes import ReloadResult

__all__ = ["ConfigWatcher", "Reloads", "SighupReload", "Triggers", "reload_on_sighup"]

log = logger("loopai")

OnReload = Callable[[ReloadResult], None]


class Reloads:
    """Runs ``reload()`` in a daemon thread each time it is asked to (requests made during a
    reload make one more), and hands each result to ``on_reload``."""

    def __init__(self, reload: Callable[[], ReloadResult], on_reload: OnReload | None = None) -> None:
        self._reload = reload
        self._on_reload = on_reload
        self._wanted = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, name="loopai-reload", daemon=True)
        self._thread.start()

    def request(self) -> None:
        """Ask for a reload (safe in a signal handler: it only sets an event)."""
        self._wanted.set()

    def _serve(self) -> None:
        while True:
            self._wanted.wait()
            if self._stopping:
                return
            self._wanted.clear()
            try:
                result = self._reload()
            except Exception:
                log.exception("loopai: reload failed unexpectedly")
                continue
            if self._on_reload is not None:
                try:
                    self._on_reload(result)
                except Exception:
                    log.exception("loopai: on_reload callback failed")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop taking requests; waits up to ``timeout`` seconds for a reload in progress."""
        self._stopping = True
        self._wanted.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)


Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class SighupReload:
    """SIGHUP reloads a host (see :func:`reload_on_sighup`); :meth:`uninstall` puts the previous
    handler back. A previous Python handler is still called after the reload is requested."""

    def __init__(self, reload: Callable[[], ReloadResult], on_reload: OnReload | None = None) -> None:
        self._reloads = Reloads(reload, on_reload)
        self._previous: Handler = None
        self._installed = False

    def install(self) -> SighupReload:
        """Take SIGHUP; raises ``RuntimeError`` outside the main thread or where there is no SIGHUP."""
        if not hasattr(signal, "SIGHUP"):
            self._reloads.stop()
            raise RuntimeError("this platform has no SIGHUP: reload with host.reload() instead")
        if threading.current_thread() is not threading.main_thread():
            self._reloads.stop()
            raise RuntimeError("SIGHUP can only be taken in the main thread (Python delivers signals there)")
        self._previous = signal.signal(signal.SIGHUP, self._handle)
        self._installed = True
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._reloads.request()
        previous = self._previous
        if callable(previous):
            previous(signum, frame)

    def uninstall(self) -> None:
        """Give SIGHUP back to whoever had it before (from the main thread), and stop reloading."""
        if self._installed and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGHUP, self._previous if self._previous is not None else signal.SIG_DFL)
        self._installed = False
        self._reloads.stop()

    def __enter__(self) -> SighupReload:
        return self

    def __exit__(self, *_: object) -> None:
        self.uninstall()


def reload_on_sighup(host: Any, on_reload: OnReload | None = None) -> SighupReload:
    """Reload ``host`` (a :class:`loopai.Host`) whenever the process receives SIGHUP.

    For long-running programs (``loopai serve``, ``loopai events deliver --follow``, an
    application's own service): call it once from the main thread; each SIGHUP then runs
    ``host.reload()`` in a worker thread (never inside the signal handler: the main thread may
    be in a host call that the reload waits for) and hands the :class:`loopai.host.ReloadResult`
    to ``on_reload`` (for metrics, or a log line). Returns the installed handler: ``uninstall()``
    it (or use it as a context manager) to give SIGHUP back. Raises ``RuntimeError`` outside
    the main thread and on platforms without SIGHUP. A library never calls this on its own:
    an embedding application opts in with ``[host] reload_on_sighup = true``.
    """
    return SighupReload(host.reload, on_reload).install()


class ConfigWatcher:
    """Polls one file every ``interval`` seconds; a change that then holds still for one more
    interval (an editor's save, a deployment's copy) calls ``changed()`` once."""

    def __init__(self, path: Path, interval: float, changed: Callable[[], None]) -> None:
        self.path = path
        self.interval = interval
        self._changed = changed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="loopai-config-watch", daemon=True)
        self._thread.start()

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _watch(self) -> None:
        seen = self._stamp()
        while not self._stop.wait(self.interval):
            now = self._stamp()
            if now == seen:
                continue
            while not self._stop.wait(self.interval):  # debounce: wait until it holds still
                again = self._stamp()
                if again == now:
                    break
                now = again
            else:
                return
            seen = now
            log.info("loopai: %s changed: reloading", self.path)
            self._changed()

    def stop(self) -> None:
        """Stop watching (waits for the watcher to notice)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(self.interval + 1.0)


class Triggers:
    """A host's own reload triggers, from its configuration's ``[host]`` table: started with the
    host, followed after each reload (a watcher follows ``watch_config`` and the file), stopped
    when it closes. ``report`` takes what cannot be honoured."""

    def __init__(self, reload: Callable[[], ReloadResult], report: Callable[[str], None]) -> None:
        self._reload = reload
        self._report = report
        self._reloads: Reloads | None = None
        self._watcher: ConfigWatcher | None = None
        self._sighup: SighupReload | None = None
        self._lock = threading.Lock()

    def start(self, config: LoopaiConfig) -> None:
        """Take SIGHUP if ``reload_on_sighup`` (in the main thread only) and watch the file if asked."""
        if config.host.reload_on_sighup:
            try:
                self._sighup = SighupReload(self._reload).install()
            except RuntimeError as exc:
                self._report(f"reload_on_sighup = true is not in effect: {exc}")
        self.follow(config)

    def follow(self, config: LoopaiConfig) -> None:
        """Watch ``config``'s file when it asks for it (and no other), stop watching otherwise."""
        wanted = config.source if config.host.watch_config else None
        if config.host.watch_config and wanted is None:
            self._report("watch_config = true has no file to watch: the configuration was not read from one")
        with self._lock:
            watcher = self._watcher
            if watcher is not None and (watcher.path, watcher.interval) == (wanted, config.host.watch_interval):
                return
            self._watcher = None
            if wanted is not None:
                if self._reloads is None:
                    self._reloads = Reloads(self._reload)
                self._watcher = ConfigWatcher(wanted, config.host.watch_interval, self._reloads.request)
        if watcher is not None:
            watcher.stop()

    def stop(self) -> None:
        """Stop watching, give SIGHUP back, stop the reload thread."""
        with self._lock:
            watcher, self._watcher = self._watcher, None
            reloads, self._reloads = self._reloads, None
            sighup, self._sighup = self._sighup, None
        if watcher is not None:
            watcher.stop()
        if reloads is not None:
            reloads.stop()
        if sighup is not None:
            sighup.uninstall()
