"""Every problem of a configuration, as ``loopai config check`` reports them and ``loopai run`` and
``loopai serve`` when they refuse one: the file's own, then the settings of the plugins it names
(checked against each plugin's own model, which needs the plugins loaded), each with the file and
line it is about, in the file's order."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopai.config import LoopaiConfig, Reading

__all__ = [
    "checking_host",
    "configuration_warnings",
    "every_problem",
    "located_misspelt",
    "plugin_problems",
    "with_lines",
]


def every_problem(reading: Reading) -> list[str]:
    """The problems ``reading`` found (an unset ``${VAR}`` among them), then those of the plugins its
    configuration names, each once, located and in the file's order: what a command that needs the
    configuration says when it refuses it, so that one round of fixes is enough."""
    problems = list(reading.problems)
    if reading.config is not None:
        problems += [error for error in plugin_problems(reading.config, reading)[0] if error not in problems]
    return [message for message, _file, _line in with_lines(problems, reading)]


def checking_host(config: LoopaiConfig, **options: Any) -> Any:
    """A host for a command that checks plugins (``config check``, ``config show``, ``plugins
    list --load`` and ``check``), not started: installed plugins discovered and configured, never
    strict (it must show the broken ones, not stop at them), no outbox unless ``options`` say
    otherwise (checking writes no file), and the state this process's own (a ``[state] url`` database
    is not connected to: ``loopai db status`` checks it). ``options`` go to :class:`loopai.Host`."""
    from loopai.host import Host
    from loopai.state import MemoryStateStore

    options.setdefault("outbox", False)
    return Host(config, discover=True, strict=False, state=MemoryStateStore(), **options)


def plugin_problems(config: LoopaiConfig, reading: Reading) -> tuple[list[str], list[str]]:
    """Errors of the plugins the configuration names (their settings checked against their own
    models), and warnings about installed plugins it does not name."""
    errors: list[str] = _state_problems(config)
    host = checking_host(config)  # installed plugins loaded, so that their settings are checked
    host.close()
    warnings: list[str] = configuration_warnings(host)
    said = set()
    for record in host.discovered:
        if record.status in ("ok", "disabled"):
            continue
        said.add(record.problem())
        if config.plugins.find(record.kind, record.name) is None:
            warnings.append(f"{record.problem()} (not named in the configuration; see loopai plugins check)")
            continue
        lines = [line for line in (record.reason or "").splitlines() if line.startswith(config.where_prefix())]
        errors += lines or [f"{config.where(record.kind, record.name)}: {record.problem()}"]
    # Plugins run all the same (by priority, without the constraint): a cycle is said as a warning, as
    # loopai run says it; a misspelt name the file wrote is an error of the file, at its line (loopai
    # plugins check counts it as a problem), one a plugin's class declares a warning.
    ordering = _order_problems(host)
    misspelt = located_misspelt(config, host)
    for problem in host.problems:
        if problem in misspelt:
            errors.append(misspelt[problem])
        elif problem in ordering:
            warnings.append(problem)
        elif problem not in said:
            errors += problem.splitlines()  # a plugin's settings problems come as one line each
    kept = []
    for error in errors:
        if reading.already_reported(error):
            continue
        if reading.refused_without(error):
            warnings.append(f"{error} (checked without the unset variable)")
        else:
            kept.append(error)
    return kept, warnings


def _state_problems(config: LoopaiConfig) -> list[str]:
    """What a host would refuse in the ``[state] url`` (or ``LOOPAI_STATE_URL``): a URL that is not a
    ``postgresql://`` one. Nothing connects."""
    import os

    from loopai._errors import ConfigError
    from loopai.state import open_state

    try:
        open_state(None, config, os.environ)  # a store not connected, dropped
    except ConfigError as exc:
        return list(exc.problems)
    return []


def _order_problems(host: Any) -> set[str]:
    """What ``host`` said of its plugins' order: cycles of run_before/run_after constraints and of
    requires_plugins, and misspelt names in run_before/run_after."""
    from loopai.registry import requirement_cycles

    orderings = host.call_order().values()
    said = {line for ordering in orderings for line in (*ordering.cycle_report, *ordering.misspelt)}
    return said | set(requirement_cycles(entry for entry in host.registry if entry.plugin.enabled))


def located_misspelt(config: LoopaiConfig, host: Any) -> dict[str, str]:
    """Each misspelt run_before / run_after name that the configuration wrote (the plugin's entry sets
    the key and names it), said at its place in the file: ``loopai.toml: samplers.x.run_after: ...``,
    which :meth:`~loopai.LoopaiConfig.with_lines` turns into its line; keyed by the host's message."""
    from loopai._kinds import kind_of

    found: dict[str, str] = {}
    for label, ordering in host.call_order().items():
        kind = kind_of(label)
        for note in ordering.misspelt:
            for entry in config.plugins.for_kind(kind):
                for attribute in ("run_before", "run_after"):
                    written = getattr(entry, attribute, None) or []
                    head = f"{kind.title} {entry.name!r}: {attribute} "
                    if note.startswith(head) and any(note.startswith(f"{head}{name!r} ") for name in written):
                        message = note.replace(" (or wherever it was set)", "")
                        found[note] = f"{config.where(kind, entry.name)}.{attribute}: {message}"
    return found


def configuration_warnings(host: Any) -> list[str]:
    """What each loaded plugin says about its own settings (:meth:`loopai.Plugin.configuration_warnings`);
    a plugin whose method raises is named with what it raised."""
    from loopai._isolation import Raised, attempt, describe
    from loopai._kinds import KINDS

    said: list[str] = []
    for kind in KINDS:
        for entry in host.registry.entries(kind, enabled_only=False):
            method = getattr(entry.plugin, "configuration_warnings", None)
            if method is None:
                continue
            outcome = attempt(method)
            if isinstance(outcome, Raised):
                said.append(f"{kind.key}.{entry.name}: configuration_warnings() raised {describe(outcome.error)}")
            else:
                said += [str(line) for line in outcome or ()]
    return said


def with_lines(errors: list[str], reading: Reading) -> list[tuple[str, str | None, int | None]]:
    """Each error with the file and line it is about, where the file lets that be found
    (``loopai.toml:7: samplers.s.priority: ...``), in the file's order."""
    from loopai.config import in_file_order
    from loopai.config import with_lines as lines_of

    config = reading.config
    source = config.source if config is not None else None
    if config is not None:  # a place a LOOPAI_* variable set is named by the variable
        errors = [config.by_variable(error) for error in errors]
    if config is None or source is None:
        return [(error, None, None) for error in errors]
    label = config.source_label
    located = [
        (message, label if line is not None or message.startswith(f"{label}: ") else None, line)
        for message, line in lines_of(errors, source, label)
    ]
    return sorted(located, key=lambda found: in_file_order(found[2]))
