"""``loopai plugins list / show / check``: what is installed, what loads, and why."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from loopai._kinds import KINDS, kind_of
from loopai.cli._common import (
    config_or_exit,
    plugin_output_to_stderr,
    print_problems,
    selection_of,
    strict_of,
)

__all__ = ["add_commands"]

HELP = "list, show, check, scaffold, install and uninstall plugins"
"""What ``loopai --help`` says of the command."""

_KIND_CHOICES = tuple(kind.label for kind in KINDS)


def add_commands(commands: Any, parent: argparse.ArgumentParser) -> None:
    """Add the ``plugins`` command tree to ``commands`` (an argparse subparsers object)."""
    plugins = commands.add_parser("plugins", help=HELP)
    sub = plugins.add_subparsers(dest="plugins_command", metavar="COMMAND")

    listing = sub.add_parser(
        "list",
        parents=[parent],
        help="every discovered plugin (imports nothing)",
        description=_LIST_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    listing.add_argument("--all", action="store_true", help="include plugins that selection turned off")
    listing.add_argument("--kind", choices=_KIND_CHOICES, help="only this kind")
    listing.add_argument("--load", action="store_true", help="also import and construct them; report failures")
    listing.set_defaults(handler=_list)

    show = sub.add_parser("show", parents=[parent], help="one plugin: metadata, checks, settings, selection")
    show.add_argument("name")
    show.add_argument("--kind", choices=_KIND_CHOICES, help="when the name is shared")
    show.set_defaults(handler=_show)

    check = sub.add_parser("check", parents=[parent], help="load every selected plugin; exit 1 listing problems")
    check.set_defaults(handler=_check)

    from loopai.cli._install import add_install_commands
    from loopai.cli._new import add_new_command

    add_new_command(sub)
    add_install_commands(sub)
    plugins.set_defaults(
        handler=_list,
        json=False,
        all=False,
        kind=None,
        load=False,
        config=None,
        plugins=None,
        disable_plugins=None,
        no_autoload=False,
        strict=None,
    )


_LIST_DESCRIPTION = """\
Every plugin declared through loopai entry points, with its status and why.

Without --load nothing is imported: the status comes from the distributions'
metadata (requirement checks, duplicate names) and the selection rules. Then
"enabled" says whether selection and the configuration turn the plugin on, and
"priority" is unknown (null in JSON, "-" in the table) unless the configuration
sets it: a plugin states both itself once constructed, and may turn itself off
(a webhook handler without a URL does). --load imports and constructs the
selected plugins and reports what they did: "failed" with the error, or
"disabled" with why (for example "idle: validate_configuration() refused its
settings: ..."). Plugin output while loading goes to stderr.

Strict mode (--strict, LOOPAI_STRICT_PLUGINS=1, strict = true in the
configuration) exits 1 after the listing when a shown plugin has a problem.

JSON: a list of objects with name, kind, distribution, version, enabled,
priority (null when unknown), status (ok | disabled | incompatible |
missing-dependency | duplicate | failed), reason (null when ok), selected_by,
entry_point, group, loaded and warnings.
"""


def _records(args: argparse.Namespace, *, load: bool) -> tuple[list[Any], list[str], bool]:
    """Discovered plugins, their problems and whether strict mode is on.

    Problems are those of the plugins of ``--kind`` (when given) and, with ``load``, those
    the host found applying the configuration. In strict mode a plugin's warning is a
    problem too, and the plugin ``failed``, as a strict host would have it.
    """
    from loopai.discovery import discover

    config = config_or_exit(args)
    selection = selection_of(args, config)
    strict = strict_of(args, config)
    kind = getattr(args, "kind", None)
    if not load:
        records = discover(config, selection=selection)
        return records, [_problem(r) for r in records if _has_problem(r) and kind in (None, r.kind)], strict
    from loopai.host import Host  # here: a listing (no load) needs no host

    # Never strict here: a listing must show the broken plugins, not stop at them.
    with plugin_output_to_stderr():
        host = Host(config, discover=True, selection=selection, strict=False)
        host.close()
    records = host.discovered
    reported = [r.reason for r in records if _has_problem(r) and r.reason]
    others = [p for p in host.problems if not any(reason in p for reason in reported)]
    if strict:
        for record in records:
            if record.warnings and record.status in ("ok", "disabled"):
                record.fail("failed", "; ".join(record.warnings) + " (strict mode)")
                record.loaded = False
    problems = [_problem(r) for r in records if _has_problem(r) and kind in (None, r.kind)]
    problems += [p for p in others if _concerns(p, kind)]
    return records, problems, strict


def _has_problem(record: Any) -> bool:
    return record.status not in ("ok", "disabled")


def _problem(record: Any) -> str:
    return f"{record.kind} {record.name!r} ({record.distribution} {record.version}) is {record.status}: {record.reason}"


def _concerns(problem: str, kind: str | None) -> bool:
    """Whether a host problem concerns plugins of ``kind``: it names a ``validators.NAME``-style entry."""
    named = [kind.label for kind in KINDS if f": {kind.key}." in problem]
    return kind is None or not named or kind in named


def _list(args: argparse.Namespace) -> int:
    records, problems, strict = _records(args, load=args.load)
    status = _listing(args, records)
    if strict and problems:  # strict mode turns any problem into a failure, once everything is shown
        print_problems(problems)
        print(f"{len(problems)} problem(s) in strict mode", file=sys.stderr)
        return 1
    return status


def _listing(args: argparse.Namespace, records: list[Any]) -> int:
    shown = [r for r in records if (args.all or r.selected) and (args.kind in (None, r.kind))]
    if args.json:
        print(json.dumps([r.to_dict() for r in shown], indent=2))
        return 0
    if not shown:
        hidden = len(records) - len(shown)
        print("no plugins found" + (f" ({hidden} turned off; --all shows them)" if hidden else ""))
        return 0
    rows = [("NAME", "KIND", "DISTRIBUTION", "VERSION", "STATUS", "PRIORITY", "WHY")]
    for r in shown:
        why = r.reason if r.status != "ok" else "; ".join([r.selected_by, *(f"warning: {w}" for w in r.warnings)])
        priority = "-" if r.priority is None else str(r.priority)
        rows.append((r.name, r.kind, r.distribution, r.version, r.status, priority, why or ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
    if not args.load:
        print(
            "note: nothing was loaded: PRIORITY - is not known unless configured, and a plugin may still "
            "turn itself off when constructed; --load tells both"
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    from loopai._redact import redact
    from loopai.discovery import discover, load_discovered
    from loopai.registry import PluginRegistry

    config = config_or_exit(args)
    records = [r for r in discover(config, selection=selection_of(args, config)) if r.name == args.name]
    records = [r for r in records if args.kind in (None, r.kind)]
    if not records:
        print(f"no installed plugin is named {args.name!r}; see: loopai plugins list --all", file=sys.stderr)
        return 1
    strict = strict_of(args, config)
    for record in records:
        registry = PluginRegistry()
        with plugin_output_to_stderr():
            load_discovered([record], registry, config, strict=strict)
        print(f"{record.name}  ({record.kind})")
        print(f"  distribution:  {record.distribution} {record.version}")
        if record.summary:
            print(f"  summary:       {record.summary}")
        print(f"  entry point:   [{record.group}] {record.name} = {record.value}")
        print(f"  installed at:  {record.path}")
        print(f"  status:        {record.status}" + (f": {record.reason}" if record.reason else ""))
        print(f"  selection:     {'on' if record.selected else 'off'}: {record.selected_by}")
        for warning in record.warnings:
            print(f"  warning:       {warning}")
        print("  requirements:")
        for check in record.checks or ():
            print(f"    [{'ok' if check.ok else 'FAIL'}] {check.message}")
        if not record.checks:
            print("    (none)")
        plugin = registry.resolve(kind_of(record.kind).base, record.name)
        entry = config.plugins.find(record.kind, record.name)
        if plugin is not None:
            priority = record.priority if record.priority is not None else plugin.priority  # configured wins
            print(f"  priority:      {priority}")
            print(f"  version:       {plugin.version}  author: {plugin.author or '-'}")
            settings = plugin.config
            shown = redact(settings)
            print(f"  settings:      {json.dumps(shown, default=str, sort_keys=True)}")
        elif entry is not None:
            # Without its settings model nothing tells which text is a secret: hide all of it.
            hidden = json.dumps(_hide_text(entry.configuration), default=str, sort_keys=True)
            print(f"  settings:      {hidden} (not loaded: text values hidden)")
    return 0


def _hide_text(value: Any) -> Any:
    from loopai._redact import REDACTED

    if isinstance(value, (str, bytes)):
        return REDACTED if value else value
    if isinstance(value, dict):
        return {key: _hide_text(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_hide_text(item) for item in value]
    return value


def _check(args: argparse.Namespace) -> int:
    records, problems, strict = _records(args, load=True)
    loaded = sum(1 for r in records if r.loaded)
    off = sum(1 for r in records if r.status == "disabled")
    if not strict:  # in strict mode warnings are failures, among the problems
        for warning in (w for r in records for w in r.warnings):
            print(f"warning: {warning}", file=sys.stderr)
    if problems:
        print_problems(problems)
        print(f"{len(problems)} problem(s); {loaded} plugin(s) loaded, {off} turned off", file=sys.stderr)
        return 1
    print(f"ok: {loaded} plugin(s) loaded, {off} turned off")
    return 0
