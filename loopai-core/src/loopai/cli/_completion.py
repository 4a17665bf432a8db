"""``loopai completion bash|zsh|fish``: the shell code that completes loopai's commands and options.

Completion is argcomplete's: the shell runs ``loopai`` with ``_ARGCOMPLETE`` set, :func:`complete`
answers from the same argparse tree that parses the command line, so completion never goes
stale. argcomplete is an optional extra (``pip install 'loopai-core[completion]'``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_commands", "complete"]


SHELLS = ("bash", "zsh", "fish")
_MISSING = "loopai completion needs argcomplete, an optional extra: pip install 'loopai-core[completion]'"


def add_commands(commands: Any, help_text: str, subcommand: str | None) -> None:
    """Add ``completion`` to ``commands`` (an argparse subparsers object); see :func:`loopai.cli._main.build_parser`."""
    completion = commands.add_parser(
        "completion",
        help=help_text,
        description="Print the code that makes SHELL complete loopai's commands, options and choices.",
        epilog='bash:  eval "$(loopai completion bash)"   (add it to ~/.bashrc)\n'
        'zsh:   eval "$(loopai completion zsh)"    (add it to ~/.zshrc)\n'
        "fish:  loopai completion fish > ~/.config/fish/completions/loopai.fish",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    completion.add_argument("shell", choices=SHELLS, metavar="SHELL", help=f"one of {', '.join(SHELLS)}")
    completion.set_defaults(handler=_completion)


def _completion(args: argparse.Namespace) -> int:
    try:
        from argcomplete.shell_integration import shellcode
    except ImportError:
        print(_MISSING, file=sys.stderr)
        return 2
    sys.stdout.write(shellcode(["loopai"], shell=args.shell))
    return 0


def complete(parser: argparse.ArgumentParser) -> None:
    """Answer the shell's completion request (argcomplete exits); without argcomplete, nothing is offered."""
    try:
        import argcomplete
    except ImportError:
        return
    argcomplete.autocomplete(parser)
