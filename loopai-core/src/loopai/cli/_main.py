"""The ``loopai`` command line: the command tree and ``main``, which turns any failure into one line."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, Final, TextIO

from loopai.cli._common import usage
from loopai.cli._parser import LoopaiParser, VersionAction

__all__ = ["build_parser", "main"]


COMMANDS: Final = {
    "config": "check or show the configuration",
    "plugins": "list, show, check, scaffold, install and uninstall plugins",
    "run": "validate, sample and raise events for execution records (JSON Lines)",
    "events": "the outbox: list deliveries, deliver what is pending, replay dead letters, prune old ones, where it is",
    "serve": "run the plugins as an HTTP service (validate, sample, events, batches, webhooks)",
    "db": "the shared PostgreSQL database: schema status and upgrade",
    "completion": "print the shell code that completes loopai commands (bash, zsh, fish)",
}
"""The commands :func:`build_parser` knows, in the order ``loopai --help`` lists them, with what it says of each."""


def build_parser(command: str | None = None, subcommand: str | None = None) -> argparse.ArgumentParser:
    """The command tree; each command's handler is in ``args.handler``.

    With ``command`` (``""``: none), only that command's arguments are built and the others are
    named with their help: all that parsing its line needs (``loopai --version`` builds nothing of
    ``loopai plugins install``, whose arguments cost more to build than the rest of the start-up).
    A command's module (``loopai.cli._<command>``) is imported only when its arguments are built,
    by its ``add_commands(commands, help_text, subcommand)``; ``subcommand`` is the word that
    follows the command on the line, and a command whose sub-commands cost much to build
    (``plugins``) builds only that one, naming the others.
    """
    parser = LoopaiParser(prog="loopai", description="Loopai's plugin host.")
    parser.is_root = True
    parser.add_argument("--version", action=VersionAction, help="show the versions of loopai and Python, and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        if command is None or command == name:
            module = importlib.import_module(f"loopai.cli._{name}")
            module.add_commands(commands, help_text, subcommand if command == name else None)
        else:
            commands.add_parser(name, help=help_text, add_help=False)
    return parser


def _words_in(arguments: Sequence[str]) -> tuple[str | None, str | None]:
    """The command ``arguments`` run and the word right after it (None when there is none, or it is
    an option). The command is the first word that names one (the root's options come before it,
    and no value of theirs names a command): ``""`` when there is no word at all (``loopai
    --version``); None when words name no command, so that every command is built for argparse
    to say which one was meant."""
    for at, word in enumerate(arguments):
        if word in COMMANDS:
            following = arguments[at + 1] if at + 1 < len(arguments) else None
            return word, following if following is not None and not following.startswith("-") else None
    return (None if any(not word.startswith("-") for word in arguments) else ""), None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``loopai`` command; returns the exit status (0 ok, 1 problems, 2 usage or failure).

    Without ``argv`` this is the process's own command line (the ``loopai`` script, ``python -m
    loopai``): when a plugin left a non-daemon thread running, the process ends here, after a
    warning naming it, rather than hang at exit waiting for that thread.
    """
    arguments = sys.argv[1:] if argv is None else list(argv)
    if argv is None:
        from loopai._crash import stacks_on_crash

        stacks_on_crash()
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions (see loopai completion): every command
        from loopai.cli._completion import complete

        complete(build_parser())
    parser = build_parser(*_words_in(arguments))
    args = parser.parse_args(arguments)
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
    except KeyboardInterrupt as interrupt:
        from loopai._crash import interrupted_line

        print(interrupted_line(interrupt.__traceback__), file=sys.stderr)
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
