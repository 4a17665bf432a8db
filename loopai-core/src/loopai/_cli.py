"""The ``loopai`` command line: argument parsing and the ``config`` commands."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def _version() -> str:
    from loopai import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree; each command's handler is in ``args.handler``."""
    parser = argparse.ArgumentParser(prog="loopai", description="Loopai's plugin host.")
    parser.add_argument("--version", action="version", version=f"loopai-core {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    config = commands.add_parser("config", help="check or show the configuration")
    config_commands = config.add_subparsers(dest="config_command", metavar="COMMAND")
    check = config_commands.add_parser("check", help="validate a configuration file; exit 1 listing every error")
    check.add_argument("path", nargs="?", help="file to check (default: LOOPAI_CONFIG, ./loopai.toml, pyproject.toml)")
    check.set_defaults(handler=_config_check)
    show = config_commands.add_parser("show", help="print the effective configuration as JSON, secrets redacted")
    show.add_argument("path", nargs="?", help="file to show (default: as for check)")
    show.set_defaults(handler=_config_show)
    config.set_defaults(handler=lambda args: _usage(config))

    from loopai._cli_plugins import add_commands, host_options

    add_commands(commands, host_options())
    from loopai._cli_run import add_command as add_run

    add_run(commands, host_options())
    from loopai._cli_events import add_commands as add_events

    add_events(commands, host_options())
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _config_check(args: argparse.Namespace) -> int:
    from loopai import Host
    from loopai._config import read_config

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
    count = sum(len(config.plugins.for_kind(kind)) for kind in ("validators", "samplers", "webhook_handlers"))
    print(f"{config.source_label}: ok ({count} plugin entr{'y' if count == 1 else 'ies'})")
    return 0


def _config_show(args: argparse.Namespace) -> int:
    from loopai import ConfigError, Host, Plugin, load_config, redact

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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``loopai`` command; returns the exit status (0 ok, 1 problems, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        return _usage(parser)
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
