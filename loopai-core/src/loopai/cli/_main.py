"""The ``loopai`` command line: the command tree and ``main``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from loopai.cli._common import usage

__all__ = ["build_parser", "main"]


def _version() -> str:
    from loopai._version import core_version

    return core_version()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command tree; each command's handler is in ``args.handler``.

    With ``command`` (``""``: none), only that command's arguments are built and the others are
    named with their help: all that parsing its line needs (``loopai --version`` builds nothing of
    ``loopai plugins install``, whose arguments cost more to build than the rest of the start-up).
    """
    parser = argparse.ArgumentParser(prog="loopai", description="Loopai's plugin host.")
    parser.add_argument("--version", action="version", version=f"loopai-core {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    from loopai.cli import _config, _events, _plugins, _run
    from loopai.cli._common import host_options

    groups: dict[str, tuple[str, Callable[[], None]]] = {
        "config": (_config.HELP, lambda: _config.add_commands(commands)),
        "plugins": (_plugins.HELP, lambda: _plugins.add_commands(commands, host_options())),
        "run": (_run.HELP, lambda: _run.add_command(commands, host_options())),
        "events": (_events.HELP, lambda: _events.add_commands(commands, host_options())),
    }
    for name, (help_text, add) in groups.items():
        if command is None or command == name:
            add()
        else:
            commands.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``loopai`` command; returns the exit status (0 ok, 1 problems, 2 usage)."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    command = next((word for word in arguments if not word.startswith("-")), "")
    parser = build_parser(command)
    args = parser.parse_args(arguments)
    handler = getattr(args, "handler", None)
    if handler is None:
        return usage(parser)
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
