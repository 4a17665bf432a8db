"""``loopai plugins order [--kind KIND] [--json]``: each kind's effective call order, and why.

The order is the one every dispatch uses, sync and async: ``run_before`` / ``run_after``
constraints between plugins of one kind first, then priority, then name. Constraints naming
an absent plugin are listed as notes (with "did you mean" when the name is close to one that is
there); cycles are reported naming every plugin in them.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from loopai._kinds import KINDS
from loopai.cli._common import config_or_exit, plugin_output_to_stderr, print_problems, selection_of, strict_of

__all__ = ["add_command", "order_lines"]

_DESCRIPTION = """\
The order in which the host calls each kind's enabled plugins, and why each plugin stands
where it stands: the run_before / run_after constraint that placed it (class attributes, or
the keys of the same names in the plugin's configuration table), else its priority (higher
first) and then its name. A constraint naming a plugin that is not loaded and enabled is
ignored, with a note; a name close to a plugin of the kind that is there gets "did you mean"
and is also in "misspelt" (loopai plugins check counts it as a problem, loopai run warns).
Plugins whose constraints form a cycle run by priority among themselves, and the cycle is
reported. Plugins disabled because a plugin they require (requires_plugins) is missing are
listed last.

Exit status: 0; 1 in strict mode when there is a cycle, a misspelt name or a missing
required plugin.

JSON: {"kinds": [{"kind", "order": [{"position", "name", "priority", "reason"}], "notes",
"misspelt", "cycles": [{"plugins", "report"}]}], "missing_plugins": [{"kind", "name",
"reason"}]}.
"""


def add_command(sub: Any, name: str, help_text: str, parent: argparse.ArgumentParser) -> None:
    """Add ``plugins order`` (``name``) to the ``plugins`` command tree (``sub``: its subparsers object)."""
    order = sub.add_parser(
        name,
        parents=[parent],
        help=help_text,
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    order.add_argument("--kind", choices=tuple(kind.label for kind in KINDS), help="only this kind")
    order.add_argument("--json", action="store_true", help="print JSON")
    order.set_defaults(handler=_order)


def _loaded_host(args: argparse.Namespace, config: Any = None) -> Any:
    """A host with every selected plugin loaded (not started), built from ``config`` (default: the
    command's configuration; a diagnostic one may leave unset variables out)."""
    from loopai.host import Host

    config = config if config is not None else config_or_exit(args)
    # Never strict while loading: the order of what does load is shown, and strict mode decides the exit.
    with plugin_output_to_stderr():
        host = Host(config, discover=True, selection=selection_of(args, config), strict=False)
        host.close()
    return host


def _order(args: argparse.Namespace) -> int:
    host = _loaded_host(args)
    orderings = [o for label, o in host.call_order().items() if args.kind in (None, label)]
    missing = [m for m in _missing_plugins(host) if args.kind in (None, m["kind"])]
    if args.json:
        print(json.dumps({"kinds": [o.to_dict() for o in orderings], "missing_plugins": missing}, indent=2))
    else:
        _print_orders(orderings, missing)
    problems = [line for o in orderings for line in (*o.cycle_report, *o.misspelt)]
    problems += [f"{m['kind']} {m['name']!r} is missing-plugin: {m['reason']}" for m in missing]
    if problems and strict_of(args, config_or_exit(args)):
        print_problems(problems)
        print(f"{len(problems)} problem(s) in strict mode", file=sys.stderr)
        return 1
    return 0


def _missing_plugins(host: Any) -> list[dict[str, str]]:
    """The plugins that are off while a plugin they require is not loaded and enabled."""
    from loopai._kinds import kind_of

    enabled = {entry.name for entry in host.registry if entry.plugin.enabled}
    missing = []
    for entry in host.registry:
        absent = [name for name in entry.plugin.requires_plugins if name not in enabled]
        if absent and not entry.plugin.enabled:
            names = ", ".join(repr(name) for name in absent)
            reason = f"it requires {names}, which {'is' if len(absent) == 1 else 'are'} not loaded and enabled"
            missing.append({"kind": kind_of(entry.kind).label, "name": entry.name, "reason": reason})
    return missing


def _print_orders(orderings: list[Any], missing: list[dict[str, str]]) -> None:
    for ordering in orderings:
        print(f"{ordering.kind.title}s:")
        if not ordering.placed:
            print("  (none enabled)")
        width = max((len(placed.name) for placed in ordering.placed), default=0)
        for placed in ordering.placed:
            print(f"  {placed.position:>2}. {placed.name.ljust(width)}  priority {placed.priority:<5}  {placed.reason}")
        for note in ordering.notes:
            print(f"  note: {note}")
        for report in ordering.cycle_report:
            print(f"  cycle: {report}")
    if missing:
        print("disabled, a required plugin is missing:")
        for plugin in missing:
            print(f"  {plugin['kind']} {plugin['name']!r}: {plugin['reason']}")


def order_lines(host: Any, kind: str, name: str) -> list[str]:
    """What ``plugins show`` says of one plugin's place: its position and why, its constraints and
    dependencies, the notes and cycles that concern it."""
    ordering = host.call_order().get(kind)
    plugin = host.registry.resolve(kind, name)
    lines = []
    if plugin is not None:
        lines.append(f"requires:      {', '.join(plugin.requires_plugins) or '(nothing)'}")
        lines.append(
            f"run before:    {', '.join(plugin.run_before) or '-'}   run after: {', '.join(plugin.run_after) or '-'}"
        )
    placed = next((p for p in ordering.placed if p.name == name), None) if ordering is not None else None
    if placed is not None:
        lines.append(f"call order:    {placed.position} of {len(ordering.placed)}: {placed.reason}")
    else:
        lines.append("call order:    not called (not loaded and enabled)")
    if ordering is not None:
        lines += [f"note:          {note}" for note in ordering.notes if f"{name!r}" in note]
        lines += [f"cycle:         {line}" for line in ordering.cycle_report if f"{name!r}" in line]
    return lines
