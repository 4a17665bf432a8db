"""``loopai plugins list / show / check``: what is installed, what loads, and why."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any, Final

from loopai._kinds import KINDS
from loopai.cli._checking import checking_host, located_misspelt
from loopai.cli._common import (
    NOT_SERVING,
    diagnostic_config,
    every_problem,
    host_options,
    plugin_output_to_stderr,
    print_problems,
    selection_of,
    strict_of,
)

__all__ = ["add_commands"]

_KIND_CHOICES = tuple(kind.label for kind in KINDS)

_ELSEWHERE: Final = {
    "show": ("loopai.cli._show", "one plugin: metadata, checks, selection, settings and their schema"),
    "new": ("loopai.cli._new", "scaffold a plugin package (needs: pip install 'loopai-core[new]')"),
    "install": (
        "loopai.cli._install",
        "install plugin packages into this environment, refusing ones that do not fit this loopai-core",
    ),
    "uninstall": (
        "loopai.cli._install",
        "uninstall plugin packages, by plugin or distribution name (works for broken plugins)",
    ),
    "order": ("loopai.cli._order", "each kind's call order, and why each plugin stands where it does"),
}
"""The sub-commands other modules build, in the order ``loopai plugins --help`` lists them after
``list`` and ``check``: the module whose ``add_command(sub, name, help_text, parent)`` builds
each (imported only then) and what the help says of it."""


def add_commands(commands: Any, help_text: str, subcommand: str | None) -> None:
    """Add the ``plugins`` command tree to ``commands`` (an argparse subparsers object); see
    :func:`loopai.cli._main.build_parser`. A sub-command of another module is built only when
    ``subcommand`` is None or names it; otherwise it is only named, with its help (``plugins
    list`` imports nothing of ``plugins install``)."""
    parent = host_options()
    plugins = commands.add_parser("plugins", help=help_text)
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

    check = sub.add_parser(
        "check",
        parents=[parent],
        help="load and start every selected plugin; exit 1 listing problems",
        description=_CHECK_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("--json", action="store_true", help="print the result as a JSON object")
    check.add_argument(
        "--no-start",
        dest="start",
        action="store_false",
        help="load the plugins without running their startup hooks (for hooks that must not run here)",
    )
    check.set_defaults(handler=_check)

    for name, (module, about) in _ELSEWHERE.items():
        if subcommand is None or subcommand == name:
            importlib.import_module(module).add_command(sub, name, about, parent)
        else:
            sub.add_parser(name, help=about, add_help=False)
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

With --load, each cycle of run_before / run_after constraints ("in a constraint
cycle" in the WHY column) is said after the table, naming the constraints that
close it ("cycle: ..."); with --json on stderr, the JSON staying a list.
"""

_CHECK_DESCRIPTION = """\
Load every selected plugin as loopai run does (import, construct, apply the
configuration's settings, settle order and dependencies), then start them: run
their startup hooks, then their shutdown hooks, as a run would, so that a plugin
that cannot start here (a server it cannot reach, say) is found now rather than
by loopai run. Nothing is delivered: the outbox is left alone, and the state
database ([state] url) is not connected to (loopai db status checks it). --no-start skips
the startup hooks, for plugins whose startup must not run on this machine.
(loopai config check starts nothing: it checks the file and the settings.)

Exit status: 0 when nothing is wrong; 1 listing every problem: a plugin that
fails to import, build, take its settings or start; a misspelt name in a
plugin's run_before / run_after or requires_plugins; a cycle of constraints.
Strict mode (--strict) counts warnings as problems too. 2 when the
configuration has errors: every one is listed (the named plugins' settings
too, as loopai config check lists them), with a count; nothing is loaded.

JSON: {"ok", "strict", "started", "loaded": [{"name", "kind", "distribution"}],
"turned_off": [{"name", "kind", "distribution", "reason"}], "problems",
"warnings"}.
"""


def _records(
    args: argparse.Namespace, *, load: bool, looking: bool = False, start: bool = False
) -> tuple[list[Any], list[str], bool, dict[str, Any]]:
    """Discovered plugins, their problems, whether strict mode is on, and (with ``load``) each kind's
    call order (:meth:`loopai.Host.call_order`, by kind label; else empty).

    Problems are those of the plugins of ``--kind`` (when given) and, with ``load``, those
    the host found applying the configuration; with ``start`` too, those of starting the
    plugins (their startup hooks run, then their shutdown hooks; no outbox is opened, so
    nothing is delivered, and no state database is connected to): such a plugin is ``failed``.
    In strict mode a plugin's warning is a problem too, and the plugin ``failed``, as a strict
    host would have it. ``looking`` (a listing) lets a ``${VAR}`` be unset: it is noted, not an error.
    """
    from loopai.discovery import discover

    config = diagnostic_config(args)[0] if looking else _config_for_loading(args)
    selection = selection_of(args, config)
    strict = strict_of(args, config)
    kind = getattr(args, "kind", None)
    installed_twice: list[str] = []  # a warning, an error in strict mode
    records = discover(config, selection=selection, notes=installed_twice)
    if not strict:
        for note in installed_twice:
            print(f"warning: {note}", file=sys.stderr)
    if not load:
        problems = [_problem(r) for r in records if _has_problem(r) and kind in (None, r.kind)]
        return records, config.with_lines(problems + (installed_twice if strict else [])), strict, {}
    with plugin_output_to_stderr():
        host = checking_host(config, selection=selection, outbox=False if start else None)
        if start:
            _start(host)
        host.close()
    records = host.discovered
    reported = [r.reason for r in records if _has_problem(r) and r.reason]
    misspelt = located_misspelt(config, host)  # at the file's line when the configuration wrote the name
    others = [misspelt.get(p, p) for p in host.problems if not any(reason in p for reason in reported)]
    if not strict:
        others = [p for p in others if p not in installed_twice]
    if strict:
        for record in records:
            if record.warnings and record.status in ("ok", "disabled"):
                record.fail("failed", "; ".join(record.warnings) + " (strict mode)")
                record.loaded = False
    problems = [_problem(r) for r in records if _has_problem(r) and kind in (None, r.kind)]
    problems += [p for p in others if _concerns(p, kind)]
    warned = [record for record in records if record.warnings]  # about their settings: where they are written
    located = iter(config.with_lines([warning for record in warned for warning in record.warnings]))
    for record in warned:
        record.warnings = [next(located) for _ in record.warnings]
    return records, config.with_lines(problems), strict, host.call_order()


def _config_for_loading(args: argparse.Namespace) -> Any:
    """The configuration, or, when it has errors, every one of them (the named plugins' settings too,
    as loopai config check and loopai run list them) and a count: then the command ends (exit 2).
    With ``--json`` (``plugins check``), the report's object says them too, nothing loaded."""
    from loopai._errors import ConfigError
    from loopai.config import load_config

    try:
        return load_config(args.config, unused=NOT_SERVING)
    except ConfigError:
        pass
    problems = every_problem(args.config)
    if getattr(args, "json", False):
        report = {"ok": False, "strict": bool(args.strict), "started": False, "loaded": [], "turned_off": []}
        print(json.dumps({**report, "problems": problems, "warnings": []}, indent=2))
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{len(problems)} error(s) in the configuration; nothing was loaded", file=sys.stderr)
    raise SystemExit(2)


def _start(host: Any) -> None:
    """Start ``host`` (its plugins' startup hooks; it is closed after): a plugin whose startup fails
    is disabled and named in the host's problems, and its record becomes ``failed`` with that reason.
    What keeps the host from starting at all (a state store it cannot reach) is a problem too."""
    from loopai._errors import LoopaiError

    known = len(host.problems)
    try:
        host.start()
    except LoopaiError as exc:
        host.problems.append(str(exc))
        return
    for problem in host.problems[known:]:
        for record in host.discovered:
            if record.loaded and f"{record.name!r} failed to start" in problem:
                record.fail("failed", problem)
                record.loaded = False


def _has_problem(record: Any) -> bool:
    return record.status not in ("ok", "disabled")


def _problem(record: Any) -> str:
    problem: str = record.problem()
    return problem


def _concerns(problem: str, kind: str | None) -> bool:
    """Whether a host problem concerns plugins of ``kind``: it names a ``validators.NAME``-style entry."""
    named = [kind.label for kind in KINDS if f": {kind.key}." in problem]
    return kind is None or not named or kind in named


def _list(args: argparse.Namespace) -> int:
    records, problems, strict, order = _records(args, load=args.load, looking=True)
    status = _listing(args, records, _cycles(order, args.kind))
    if strict and problems:  # strict mode turns any problem into a failure, once everything is shown
        print_problems(problems)
        print(f"{len(problems)} problem(s) in strict mode", file=sys.stderr)
        return 1
    return status


def _cycles(order: dict[str, Any], kind: str | None) -> list[str]:
    """The cycles of run_before / run_after constraints in the call ``order`` (of ``kind``, when
    given), one line each naming the constraints that close it (only a listing with --load has one)."""
    return [line for label, ordering in order.items() if kind in (None, label) for line in ordering.cycle_report]


def _listing(args: argparse.Namespace, records: list[Any], cycles: list[str]) -> int:
    shown = [r for r in records if (args.all or r.selected) and (args.kind in (None, r.kind))]
    if args.json:
        print(json.dumps([r.to_dict() for r in shown], indent=2))
        for cycle in cycles:  # beside the JSON, a bare list that stays one
            print(f"cycle: {cycle}", file=sys.stderr)
        return 0
    if not shown:
        hidden = len(records) - len(shown)
        print("no plugins found" + (f" ({hidden} turned off; --all shows them)" if hidden else ""))
        return 0
    rows = [("NAME", "KIND", "DISTRIBUTION", "VERSION", "STATUS", "PRIORITY", *(("ORDER",) * args.load), "WHY")]
    for r in shown:
        why = (
            r.reason
            if r.status != "ok"
            else "; ".join([r.selected_by, *_order_notes(r), *(f"warning: {w}" for w in r.warnings)])
        )
        priority = "-" if r.priority is None else str(r.priority)
        order = (("-" if r.position is None else str(r.position)),) if args.load else ()
        rows.append((r.name, r.kind, r.distribution, r.version, r.status, priority, *order, why or ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
    for cycle in cycles:
        print(f"cycle: {cycle}")
    if not args.load:
        print(
            "note: nothing was loaded: PRIORITY - is not known unless configured, and a plugin may still "
            "turn itself off when constructed; --load tells both"
        )
    return 0


def _order_notes(record: Any) -> list[str]:
    """What a loaded plugin's place and dependencies are, for the WHY column."""
    notes = [f"placed: {record.placed_by}"] if record.placed_by else []
    return notes + ([f"requires: {', '.join(record.requires_plugins)}"] if record.requires_plugins else [])


def _check(args: argparse.Namespace) -> int:
    records, problems, strict, _ = _records(args, load=True, start=args.start)
    loaded = [r for r in records if r.loaded]
    off = [r for r in records if r.status == "disabled"]
    warnings = [] if strict else [w for r in records for w in r.warnings]  # strict: among the problems
    if args.json:
        print(json.dumps(_check_report(loaded, off, problems, warnings, strict, args.start), indent=2))
        return 1 if problems else 0
    from loopai.cli._output import warn  # here: loopai --version and --help never need logging

    for warning in warnings:
        warn(warning)
    if problems:
        print_problems(problems)
        print(f"{len(problems)} problem(s); {len(loaded)} plugin(s) loaded, {len(off)} turned off", file=sys.stderr)
        _print_turned_off(off, sys.stderr)
        return 1
    started = "loaded and started" if args.start else "loaded (not started: --no-start)"
    print(f"ok: {len(loaded)} plugin(s) {started}, {len(off)} turned off")
    _print_turned_off(off, sys.stdout)
    return 0


def _print_turned_off(off: list[Any], stream: Any) -> None:
    for record in off:
        print(f"  off: {record.kind} {record.name!r} ({record.distribution}): {record.reason}", file=stream)


def _check_report(
    loaded: list[Any], off: list[Any], problems: list[str], warnings: list[str], strict: bool, started: bool
) -> Any:
    def brief(record: Any) -> dict[str, Any]:
        return {"name": record.name, "kind": record.kind, "distribution": record.distribution, "reason": record.reason}

    return {
        "ok": not problems,
        "strict": strict,
        "started": started,
        "loaded": [{"name": r.name, "kind": r.kind, "distribution": r.distribution} for r in loaded],
        "turned_off": [brief(record) for record in off],
        "problems": problems,
        "warnings": warnings,
    }
