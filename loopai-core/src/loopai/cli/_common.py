"""What every ``loopai`` command shares: host options, configuration and selection from the flags, usage."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from loopai._stdout import stdout_to_stderr

if TYPE_CHECKING:
    from loopai.config import LoopaiConfig, Reading, Unset
    from loopai.discovery import Selection

__all__ = [
    "NOT_SERVING",
    "config_or_exit",
    "delivery_notices",
    "diagnostic_config",
    "every_problem",
    "host_options",
    "note_unset",
    "patterns",
    "plugin_output_to_stderr",
    "results_apart",
    "print_problems",
    "selection_of",
    "sigterm_as_ctrl_c",
    "strict_of",
    "usage",
]


def positive_int(text: str) -> int:
    """An argument that is a whole number, 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def worker_count(text: str) -> int:
    """``--workers``: a number of processes, 1 or more, or ``auto`` (the CPUs this process may use)."""
    if text.strip().lower() == "auto":
        from loopai.run import available_cpus

        return available_cpus()
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; a number of processes, 1 or more, or auto (one per CPU)") from None


def usage(parser: argparse.ArgumentParser) -> int:
    """Print ``parser``'s help on stderr; the exit status of a usage error."""
    parser.print_help(sys.stderr)
    return 2


def host_options() -> argparse.ArgumentParser:
    """Options shared by every command that builds a host (a parent parser)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("plugin selection")
    group.add_argument("--config", metavar="FILE", help="configuration file (default: LOOPAI_CONFIG, ./loopai.toml)")
    group.add_argument("--plugins", metavar="PATTERNS", help="only these plugins (comma-separated globs)")
    group.add_argument("--disable-plugins", metavar="PATTERNS", help="never these plugins (comma-separated globs)")
    group.add_argument("--no-autoload", action="store_true", help="load only plugins named in the configuration")
    group.add_argument("--strict", action="store_true", default=None, help="any plugin problem is an error")
    return parent


def patterns(value: str | None) -> list[str] | None:
    """Comma-separated globs from a flag (None when the flag was not given)."""
    return None if value is None else [p.strip() for p in value.split(",") if p.strip()]


def selection_of(args: argparse.Namespace, config: LoopaiConfig) -> Selection:
    """The selection rules from the command's flags, the environment and ``config``."""
    from loopai.discovery import Selection

    return Selection.resolve(
        config,
        os.environ,
        allow=patterns(args.plugins),
        deny=patterns(args.disable_plugins),
        autoload=False if args.no_autoload else None,
    )


NOT_SERVING = ("serve",)
"""The tables a command that does not serve leaves unused: an unset ``${VAR}`` there does not stop it."""


def config_or_exit(
    args: argparse.Namespace, *, with_plugins: bool = False, unused: tuple[str, ...] = NOT_SERVING
) -> LoopaiConfig:
    """The configuration ``--config`` (or the default search) names; its problems end the command
    (exit 2). ``with_plugins``: a refused file's named plugins are loaded to check their settings
    too, so that every error is said at once (for commands that would load them anyway). ``unused``:
    the tables the command does not read (see :func:`loopai.config.load_config`)."""
    from loopai._errors import ConfigError
    from loopai.config import load_config

    try:
        return load_config(args.config, unused=unused)
    except ConfigError as exc:
        for problem in every_problem(args.config, unused) if with_plugins else exc.problems:
            print(problem, file=sys.stderr)
        raise SystemExit(2) from None


def every_problem(path: str | None, unused: tuple[str, ...] = NOT_SERVING) -> list[str]:
    """Every problem of the configuration at ``path`` (or found by the default search), the settings
    of the plugins it names included: see :func:`loopai.cli._checking.every_problem`."""
    from loopai.cli._checking import every_problem as of_reading
    from loopai.config import read_config

    with plugin_output_to_stderr():
        return of_reading(read_config(path, unused=unused))


def diagnostic_config(args: argparse.Namespace, *, noted: bool = True) -> tuple[LoopaiConfig, Reading]:
    """The configuration for a command that only looks (``plugins list``, ``plugins show``): a value
    whose ``${VAR}`` is unset is left out and noted on stderr (unless not ``noted``: the command
    says it itself, see :func:`note_unset`), not an error; other problems end the command (exit 2)."""
    from loopai.config import read_config

    reading = read_config(args.config)
    if reading.config is None or reading.errors:
        for problem in reading.problems:
            print(problem, file=sys.stderr)
        raise SystemExit(2)
    if noted:
        for unset in reading.unset:
            note_unset(unset)
    return reading.config, reading


def note_unset(unset: Unset) -> None:
    """The note on stderr for a value left out because its ``${VAR}`` is not set."""
    print(f"note: {unset.problem}; shown as {unset.shown()!r}: {unset.consequence()}", file=sys.stderr)


def strict_of(args: argparse.Namespace, config: LoopaiConfig) -> bool:
    """``--strict``, else ``LOOPAI_STRICT_PLUGINS``, else the configuration's ``strict``."""
    from loopai._flags import flag

    if args.strict is not None:
        return bool(args.strict)
    from_env = flag(os.environ, "LOOPAI_STRICT_PLUGINS")
    return from_env if from_env is not None else config.strict


@contextlib.contextmanager
def plugin_output_to_stderr() -> Iterator[None]:
    """While plugin code runs, what it prints goes to stderr: stdout is for the command's output."""
    sys.stdout.flush()
    with contextlib.redirect_stdout(sys.stderr):
        yield


@contextlib.contextmanager
def results_apart() -> Iterator[IO[str]]:
    """While inside, file descriptor 1 is stderr's (what plugins write straight to it, ``os.write(1,
    ...)``, the processes they start, native code, goes to stderr), and the command's output goes to
    the stream given: a new one on a copy of the standard output (buffered as ``sys.stdout`` is),
    closed at the end, when fd 1 is put back (also on errors and interruptions). When ``sys.stdout``
    is not on fd 1 (a test's capture, say), nothing changes: the stream given is ``sys.stdout``."""
    stdout = sys.stdout
    try:
        on_fd_1 = stdout is not None and stdout.fileno() == 1
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is a ValueError and an OSError
        on_fd_1 = False
    if not on_fd_1:
        yield stdout
        return
    kept = os.dup(1)  # not inheritable: the processes plugins start never hold the results' pipe open
    try:
        moved = stdout_to_stderr()  # an error flushing stdout is the command's
    except BaseException:
        os.close(kept)
        raise
    if not moved:  # no stderr: fd 1 stays where it is
        os.close(kept)
        yield stdout
        return
    results = io.TextIOWrapper(
        open(kept, "wb", closefd=True),  # noqa: SIM115 - closed below
        encoding=stdout.encoding,
        errors=stdout.errors,
        line_buffering=bool(getattr(stdout, "line_buffering", False)),
    )
    try:
        yield results
    except BaseException:
        with contextlib.suppress(OSError, ValueError):  # the reader may be gone (| head): the error on its way says it
            results.flush()
        raise
    else:
        try:
            results.flush()
        except OSError as exc:
            if exc.filename is None and not isinstance(exc, BrokenPipeError):
                exc.filename = "standard output"  # a full disk: "standard output: No space left on device"
            raise
    finally:
        with contextlib.suppress(OSError, ValueError):
            stdout.flush()  # what was written to sys.stdout meanwhile goes where fd 1 pointed: stderr
        os.dup2(kept, 1)
        with contextlib.suppress(OSError):  # flushed above (or could not be: dropped)
            results.close()


def print_problems(problems: list[str]) -> None:
    """One ``- problem`` line each, on stderr."""
    for problem in problems:
        print(f"- {problem}", file=sys.stderr)


@contextlib.contextmanager
def delivery_notices(prefix: str, *, quiet: bool = False) -> Iterator[None]:
    """While inside, a webhook handler's circuit opening or closing is one line on stderr,
    ``<prefix>: webhook handler 'x': circuit open ...`` (a failing outbox is said by the command);
    nothing when ``quiet`` (``-q``, errors only: a circuit opening is a warning).
    With ``--workers``, the workers' notices are logged again in the parent: the same handler says them."""
    import logging  # here: ``loopai --version`` and ``--help`` never need it

    if quiet:
        yield
        return
    logger = logging.getLogger("loopai.delivery")
    handler = logging.StreamHandler(sys.stderr)
    isatty = getattr(sys.stderr, "isatty", None)
    erase = "\r\x1b[K" if isatty is not None and isatty() else ""  # a progress line may be drawn there
    handler.setFormatter(logging.Formatter(f"{erase}{prefix}: %(message)s"))
    handler.setLevel(logging.INFO)
    handler.addFilter(lambda record: record.levelno < logging.ERROR)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


SAME_SIGTERM = 1.0
"""Seconds after a SIGTERM in which another is the same one (sent to the process and to its group)."""


class Terminated:
    """Whether a SIGTERM came (``received``, ``at`` when: ``time.monotonic()``), for the exit
    status: 143, as of a process it ended."""

    received = False
    at = 0.0


@contextlib.contextmanager
def sigterm_as_ctrl_c() -> Iterator[Terminated]:
    """While inside, SIGTERM (from ``timeout``, systemd, Kubernetes, a scheduler) does what a Ctrl-C
    would do at that moment: it calls the SIGINT handler in place (a clean stop where the command
    has one, else ``KeyboardInterrupt``; so a second SIGTERM or Ctrl-C stops at once, as a second
    Ctrl-C does), and is noted in ``received``. A SIGTERM less than :data:`SAME_SIGTERM` seconds
    after the first is the same one, sent twice (``timeout`` signals the process, then its group).
    A SIGTERM while Ctrl-C is ignored raises ``KeyboardInterrupt``: a SIGTERM is never ignored.
    Outside the main thread signals cannot be caught: then nothing changes."""
    import signal  # here: loopai --help and --version import neither
    import threading
    import time

    seen = Terminated()
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield seen
        return

    def handler(signum: int, frame: Any) -> None:
        now = time.monotonic()
        if seen.received and now - seen.at < SAME_SIGTERM:
            return  # the same stop: ``timeout`` and ``kill 0`` send it to the process and to its group
        seen.received, seen.at = True, now
        ctrl_c = signal.getsignal(signal.SIGINT)
        if not callable(ctrl_c):  # ignored, or the system's default: stop
            raise KeyboardInterrupt
        ctrl_c(signal.SIGINT, frame)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGTERM, previous)
