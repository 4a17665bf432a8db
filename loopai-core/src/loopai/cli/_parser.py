"""The ``loopai`` command's argument parser: every command says its own usage, and takes the output options.

:class:`LoopaiParser` is the class of the root parser and, through argparse's
``add_subparsers``, of every command's parser, whoever adds the command: each gets
``-v`` / ``-q`` / ``--log-level`` / ``--trace`` (see :mod:`loopai.cli._output`), an
argument it does not know is reported with that command's usage, not the root's, and a word that
is not one of an argument's choices gets what was probably meant: the closest choices (``loopai
rnu``: did you mean 'run'?) or, for a command, the command group that has it (``loopai install``:
did you mean 'loopai plugins install'?).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

from loopai._suggest import closest, did_you_mean

__all__ = ["LOG_LEVELS", "LoopaiParser", "VersionAction"]

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class LoopaiParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` for one ``loopai`` command (see the module's docstring).

    Parents (``add_help=False``) get no output options: the commands they are added to have them.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.is_root = False
        self.commands: Any = None
        """The action :meth:`add_subparsers` returned (its ``choices``: each command's parser), or None."""
        if self.add_help:
            _add_output_options(self)

    def add_subparsers(self, **kwargs: Any) -> Any:
        """argparse's ``add_subparsers``, remembered as :attr:`commands`."""
        self.commands = super().add_subparsers(**kwargs)
        return self.commands

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras and not self.is_root:
            # argparse hands unknown arguments up to the root, which shows its own usage: say this command's.
            self.error(f"unrecognized arguments: {' '.join(extras)}{self._options_meant(extras)}")
        return parsed, extras

    def _options_meant(self, extras: list[str]) -> str:
        """``; --outptu: did you mean '--output'?`` for each unknown long option close to one of ours."""
        ours = [option for option in self._option_string_actions if option.startswith("--")]
        hints = ""
        for word in extras:
            if word.startswith("--"):
                name = word.partition("=")[0]
                found = closest(name, ours, limit=2)
                if found:
                    hints += f"; {name}: did you mean {' or '.join(map(repr, found))}?"
        return hints

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # argparse's own check (it calls this for every value with choices), saying what was meant.
        choices = action.choices
        if choices is not None and isinstance(value, str) and value not in choices:
            listed = ", ".join(repr(str(choice)) for choice in choices)
            meant = self._meant(value, choices)
            raise argparse.ArgumentError(action, f"invalid choice: {value!r}{meant} (choose from {listed})")
        super()._check_value(action, value)

    def _meant(self, value: str, choices: Iterable[Any]) -> str:
        hint = did_you_mean(value, map(str, choices))
        if hint or not self.is_root or self.commands is None:
            return hint
        # A sub-command given without its group (``loopai install``): the groups that have it.
        found = [
            f"{command.prog} {value}"
            for command in self.commands.choices.values()
            if getattr(command, "commands", None) is not None and value in command.commands.choices
        ]
        if not found:
            return ""
        return f"; did you mean {' or '.join(map(repr, found))}?"

    def error(self, message: str) -> NoReturn:
        """Print this command's usage and ``message`` on stderr; exit 2."""
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n(see: {self.prog} --help)\n")


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: a command's parser must not reset what the root parsed (``loopai -v run ...``).
    group = parser.add_argument_group("output")
    group.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="say more (-vv: debug messages)"
    )
    group.add_argument(
        "-q", "--quiet", action="count", default=argparse.SUPPRESS, help="only errors (no warnings, no summary)"
    )
    group.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        type=str.lower,
        default=argparse.SUPPRESS,
        metavar="LEVEL",
        help=f"log messages from this level up: {', '.join(LOG_LEVELS)} (default: warning)",
    )
    group.add_argument(
        "--trace",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print every plugin hook call with its duration (as LOOPAI_TRACE=1)",
    )


class VersionAction(argparse.Action):
    """``--version``: loopai-core, loopai-builtin when installed, and the Python; read only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> NoReturn:
        sys.stdout.write(versions())
        parser.exit(0)


def versions() -> str:
    """One line each: ``loopai-core 0.1.0``, ``loopai-builtin 0.1.0``, ``Python 3.12.1 (CPython) /usr/bin/python3``."""
    from loopai._version import core_version

    builtin = _installed_version("loopai_builtin")
    implementation = {"cpython": "CPython", "pypy": "PyPy"}.get(sys.implementation.name, sys.implementation.name)
    return (
        "\n".join(
            [
                f"loopai-core {core_version()}",
                f"loopai-builtin {builtin}" if builtin else "loopai-builtin not installed",
                f"Python {sys.version.split()[0]} ({implementation}) {sys.executable}",
            ]
        )
        + "\n"
    )


def _installed_version(name: str) -> str | None:
    """The version of the distribution ``name`` (normalised with underscores) installed on
    ``sys.path``, from its ``.dist-info`` folder's name as pip writes it; else what
    ``importlib.metadata`` finds (an egg, say). Importing ``importlib.metadata`` would cost
    ``loopai --version`` more than everything else it does."""
    import os

    prefix = f"{name}-"
    for folder in sys.path:
        try:
            entries = os.listdir(folder or ".")
        except OSError:
            continue
        for entry in entries:
            if entry.startswith(prefix) and entry.endswith(".dist-info"):
                return entry[len(prefix) : -len(".dist-info")]
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None
