"""``loopai config check / show``: validate the configuration, every error at once; print it, secrets redacted.

Both are diagnostics: a ``${VAR}`` that is not set is shown as such (``"${LOOPAI_WEBHOOK_SECRET}
(unset)"``) and said as a warning, never an error, so that a file can be checked where its secrets
are not (CI).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from loopai.cli._checking import checking_host, plugin_problems, with_lines
from loopai.cli._common import plugin_output_to_stderr, usage

if TYPE_CHECKING:
    from loopai.config import LoopaiConfig, Reading

__all__ = ["add_commands"]

_FILE_HELP = "configuration file (default: LOOPAI_CONFIG, else the nearest loopai.toml or [tool.loopai] upwards)"


def add_commands(commands: Any, help_text: str, subcommand: str | None) -> None:
    """Add the ``config`` command tree to ``commands`` (an argparse subparsers object); see
    :func:`loopai.cli._main.build_parser` (its two sub-commands are always built)."""
    config = commands.add_parser("config", help=help_text)
    config_commands = config.add_subparsers(dest="config_command", metavar="COMMAND")
    check = config_commands.add_parser(
        "check",
        help="validate the configuration and the settings of the plugins it names; exit 1 listing every error",
        description="Validate the configuration file and every plugin's settings against the plugin's own "
        "model, in one pass: each error names the file, the line, the plugin and the field.",
        epilog="Exit status: 0 ok (warnings are said, an unset ${VAR} among them); 1 listing every error.",
    )
    show = config_commands.add_parser(
        "show",
        help="print the effective configuration as JSON (file and LOOPAI_* variables), secrets redacted",
        epilog="Exit status: 0 shown; 2 the configuration has errors (loopai config check lists them all).",
    )
    for command in (check, show):
        command.add_argument("path", nargs="?", metavar="FILE", help=_FILE_HELP)
        command.add_argument("--config", metavar="FILE", help="the same as FILE")
    check.add_argument("--json", action="store_true", help="print the result as a JSON object")
    check.set_defaults(handler=_config_check)
    show.set_defaults(handler=_config_show)
    config.set_defaults(handler=lambda args: usage(config))


def _chosen(args: argparse.Namespace) -> str | None:
    if args.path is not None and args.config is not None and args.path != args.config:
        print(f"loopai config: name one file: {args.path} or --config {args.config}", file=sys.stderr)
        raise SystemExit(2)
    chosen: str | None = args.path if args.path is not None else args.config
    return chosen


# -- check -------------------------------------------------------------------------------------------


def _config_check(args: argparse.Namespace) -> int:
    from loopai.config import read_config

    reading = read_config(_chosen(args))
    errors = list(reading.errors)
    warnings = [f"{unset.problem}; {unset.consequence()}" for unset in reading.unset]
    if reading.config is not None:
        with plugin_output_to_stderr():  # stdout is for the result (--json): what plugins print goes to stderr
            plugin_errors, plugin_warnings = plugin_problems(reading.config, reading)
        errors += [error for error in plugin_errors if error not in errors]
        warnings += plugin_warnings
    located = with_lines(errors, reading)
    if args.json:
        print(json.dumps(_report(reading, located, warnings), indent=2))
        return 1 if errors else 0
    for message, _file, _line in located:
        print(message, file=sys.stderr)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if errors:
        print(f"{len(errors)} error(s)", file=sys.stderr)
        return 1
    config = reading.config
    assert config is not None
    print(f"{config.source_label}: ok ({_entries(config)} plugin entr{'y' if _entries(config) == 1 else 'ies'})")
    return 0


def _entries(config: LoopaiConfig) -> int:
    from loopai._kinds import KINDS

    return sum(len(config.plugins.for_kind(kind)) for kind in KINDS)


def _report(reading: Reading, located: list[tuple[str, str | None, int | None]], warnings: list[str]) -> Any:
    config = reading.config
    return {
        "source": config.source_label if config is not None else None,
        "found_by": reading.found_by,
        "ok": not located,
        "plugin_entries": _entries(config) if config is not None else None,
        "errors": [{"message": message, "file": file, "line": line} for message, file, line in located],
        "warnings": warnings,
    }


# -- show --------------------------------------------------------------------------------------------


def _config_show(args: argparse.Namespace) -> int:
    from loopai._plugin import Plugin
    from loopai._redact import redact
    from loopai.config import read_config

    reading = read_config(_chosen(args))
    if reading.config is None or reading.errors:
        for problem in reading.errors or reading.problems:
            print(problem, file=sys.stderr)
        print("loopai config show: nothing shown; loopai config check lists every error", file=sys.stderr)
        return 2
    config = reading.config
    shown = {
        "source": config.source_label,
        "found_by": reading.found_by,
        **redact(config.model_dump(mode="python")),
    }
    # The plugins' settings models tell which settings are SecretStr, whatever their names.
    with plugin_output_to_stderr():  # stdout is for the JSON: what plugins print goes to stderr
        host = checking_host(config)
        host.close()
    for kind, entries in shown["plugins"].items():
        for entry, shown_entry in zip(config.plugins.for_kind(kind), entries, strict=True):
            registered = host.registry.entry(kind, entry.name)
            plugin = registered.plugin if registered is not None else None
            model = type(plugin).Config if isinstance(plugin, Plugin) else None
            shown_entry["configuration"] = redact(entry.configuration, model=model)
    for unset in reading.unset:
        _put(shown, unset.where, unset.shown())
        print(f"warning: {unset.problem}", file=sys.stderr)
    for variable, where in _REPLACING.items():
        if os.environ.get(variable):  # as the commands read them: an empty one is not set
            _put(shown, where, redact(os.environ[variable]))
    print(json.dumps(shown, indent=2, default=str))
    return 0


_REPLACING = {"LOOPAI_STATE_URL": ("state", "url"), "LOOPAI_OUTBOX": ("delivery", "outbox")}
"""The variables without ``__`` that replace a setting of the file (those with ``__`` are applied
when it is read): shown in its place, as every command uses them."""


def _put(shown: dict[str, Any], where: tuple[str, ...], value: Any) -> None:
    """Set ``value`` at ``where`` (a reader's path: a plugin is named, not indexed) in the shown document."""
    from loopai._kinds import KINDS

    table: Any = shown
    if where[:1] and where[0] in {kind.key for kind in KINDS}:
        entries = shown["plugins"].get(where[0], [])
        table = next((entry for entry in entries if entry.get("name") == where[1]), None)
        where = where[2:]
    for part in where[:-1]:
        if not isinstance(table, dict):
            return
        table = table.setdefault(part, {})
    if isinstance(table, dict) and where:
        table[where[-1]] = value
