"""The ``loopai`` command line: the command tree and ``main``, which turns any failure into one line."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from loopai.cli._common import usage
from loopai.cli._parser import LoopaiParser, VersionAction

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree; each command's handler is in ``args.handler``."""
    parser = LoopaiParser(prog="loopai", description="Loopai's plugin host.")
    parser.is_root = True
    parser.add_argument("--version", action=VersionAction, help="show the versions of loopai and Python, and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    from loopai.cli import _completion, _config, _events, _plugins, _run, _serve
    from loopai.cli._common import host_options

    _config.add_commands(commands)
    _plugins.add_commands(commands, host_options())
    _run.add_command(commands, host_options())
    _events.add_commands(commands, host_options())
    _serve.add_command(commands, host_options())
    _completion.add_command(commands)
    from loopai.cli import _db  # loopai db status / upgrade

    _db.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``loopai`` command; returns the exit status (0 ok, 1 problems, 2 usage or failure).

    Without ``argv`` this is the process's own command line (the ``loopai`` script, ``python -m
    loopai``): when a plugin left a non-daemon thread running, the process ends here, after a
    warning naming it, rather than hang at exit waiting for that thread.
    """
    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions (see loopai completion)
        from loopai.cli._completion import complete

        complete(parser)
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        return usage(parser)
    from loopai.cli._failures import report
    from loopai.cli._output import output_settings

    command = f"loopai {args.command}"
    try:
        with output_settings(args), _named_stdout():
            status = int(handler(args))
            sys.stdout.flush()  # here, where a full disk is reported, rather than at exit
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        status = 130
    except BrokenPipeError:
        _drop_stdout()
        status = 0
    except SystemExit:
        raise
    except BaseException as error:  # noqa: BLE001 - the last resort: one line, never a traceback (LOOPAI_DEBUG shows it)
        _flushed()
        status = report(error, command)
    if argv is None:
        from loopai.cli._threads import leave_without_waiting

        return leave_without_waiting(status, getattr(args, "config", None))
    return status


class _NamedStdout:
    """stdout, whose write errors name it (``OSError.filename``): a full disk is then reported as
    "standard output: No space left on device", not as some unnamed file."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise self._named(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise self._named(exc) from None

    @staticmethod
    def _named(exc: OSError) -> OSError:
        if exc.filename is None and not isinstance(exc, BrokenPipeError):
            exc.filename = "standard output"
        return exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def _named_stdout() -> Iterator[None]:
    stream = sys.stdout
    sys.stdout = _NamedStdout(stream)
    try:
        yield
    finally:
        sys.stdout = stream


def _flushed() -> bool:
    """Deliver what the command printed; False when stdout cannot be written. Then it is pointed at
    the null device, so that the interpreter's own flush at exit does not fail again with a traceback."""
    try:
        sys.stdout.flush()
        return True
    except (OSError, ValueError, AttributeError):
        _drop_stdout()
        return False


def _drop_stdout() -> None:
    stdout = sys.__stdout__
    if stdout is None or sys.stdout is not stdout:
        return  # a replaced stdout (a test's capture) is not ours to redirect
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stdout.fileno())
        os.close(null)
    except (OSError, ValueError):
        pass
