"""``loopai config check / show``: validate a configuration file, print it with secrets redacted."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from loopai._kinds import KINDS
from loopai.cli._common import usage

__all__ = ["add_commands"]

HELP = "check or show the configuration"
"""What ``loopai --help`` says of the command."""


def add_commands(commands: Any) -> None:
    """Add the ``config`` command tree to ``commands`` (an argparse subparsers object)."""
    config = commands.add_parser("config", help=HELP)
    config_commands = config.add_subparsers(dest="config_command", metavar="COMMAND")
    check = config_commands.add_parser("check", help="validate a configuration file; exit 1 listing every error")
    check.add_argument("path", nargs="?", help="file to check (default: LOOPAI_CONFIG, ./loopai.toml, pyproject.toml)")
    check.set_defaults(handler=_config_check)
    show = config_commands.add_parser("show", help="print the effective configuration as JSON, secrets redacted")
    show.add_argument("path", nargs="?", help="file to show (default: as for check)")
    show.set_defaults(handler=_config_show)
    config.set_defaults(handler=lambda args: usage(config))


def _config_check(args: argparse.Namespace) -> int:
    from loopai.config import read_config
    from loopai.host import Host

    reading = read_config(args.path)
    problems = list(reading.problems)
    if reading.config is not None:
        # Installed plugins are loaded so that their settings are checked against their models;
        # no outbox: checking creates no files.
        host = Host(reading.config, strict=False, discover=True, outbox=False)
        host.close()
        problems += [
            line
            for problem in host.problems
            for line in problem.splitlines()  # a plugin's settings problems come as one line each
            if not reading.already_reported(line)
        ]
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{len(problems)} error(s)", file=sys.stderr)
        return 1
    config = reading.config
    assert config is not None
    count = sum(len(config.plugins.for_kind(kind)) for kind in KINDS)
    print(f"{config.source_label}: ok ({count} plugin entr{'y' if count == 1 else 'ies'})")
    return 0


def _config_show(args: argparse.Namespace) -> int:
    from loopai._errors import ConfigError
    from loopai._plugin import Plugin
    from loopai._redact import redact
    from loopai.config import load_config
    from loopai.host import Host

    try:
        config = load_config(args.path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    shown = {"source": config.source_label, **redact(config.model_dump(mode="python"))}
    # The plugins' settings models tell which settings are SecretStr, whatever their names.
    host = Host(config, strict=False, discover=True, outbox=False)
    host.close()
    for kind, entries in shown["plugins"].items():
        for entry, shown_entry in zip(config.plugins.for_kind(kind), entries, strict=True):
            registered = host.registry.entry(kind, entry.name)
            plugin = registered.plugin if registered is not None else None
            model = type(plugin).Config if isinstance(plugin, Plugin) else None
            shown_entry["configuration"] = redact(entry.configuration, model=model)
    print(json.dumps(shown, indent=2, default=str))
    return 0
