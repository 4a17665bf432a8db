"""The ``loopai`` command line: the command tree and ``main``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from loopai.cli._common import usage

__all__ = ["build_parser", "main"]


def _version() -> str:
    from loopai._version import core_version

    return core_version()


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree; each command's handler is in ``args.handler``."""
    parser = argparse.ArgumentParser(prog="loopai", description="Loopai's plugin host.")
    parser.add_argument("--version", action="version", version=f"loopai-core {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    from loopai.cli import _config, _events, _plugins, _run, _serve
    from loopai.cli._common import host_options

    _config.add_commands(commands)
    _plugins.add_commands(commands, host_options())
    _run.add_command(commands, host_options())
    _events.add_commands(commands, host_options())
    _serve.add_command(commands, host_options())
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``loopai`` command; returns the exit status (0 ok, 1 problems, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
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
