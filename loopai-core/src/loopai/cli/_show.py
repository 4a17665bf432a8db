"""``loopai plugins show NAME``: one plugin's metadata, checks, selection, settings and settings schema.

The schema comes from the plugin's settings model (its ``Config``): each setting's name, type,
constraints, default and description (``Field(description=...)`` or the attribute's docstring).
Settings are shown redacted; a setting whose ``${VAR}`` is unset shows the reference.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from loopai._kinds import KINDS, kind_of
from loopai.cli._common import diagnostic_config, note_unset, plugin_output_to_stderr, selection_of, strict_of

if TYPE_CHECKING:
    from pydantic import BaseModel

    from loopai.config import Reading

__all__ = ["add_command"]


def add_command(sub: Any, name: str, help_text: str, parent: argparse.ArgumentParser) -> None:
    """Add ``show`` (``name``) to the ``plugins`` sub-commands (an argparse subparsers object)."""
    show = sub.add_parser(
        name,
        parents=[parent],
        help=help_text,
        epilog="Exit status: 0 shown; 2 no installed plugin has that name (the closest names are suggested).",
    )
    show.add_argument("name")
    show.add_argument("--kind", choices=tuple(kind.label for kind in KINDS), help="when the name is shared")
    show.add_argument("--json", action="store_true", help="print a JSON list (one object per plugin of that name)")
    show.set_defaults(handler=_show)


def _show(args: argparse.Namespace) -> int:
    from loopai._suggest import did_you_mean
    from loopai.discovery import discover

    config, reading = diagnostic_config(args, noted=False)
    everything = discover(config, selection=selection_of(args, config))
    records = [r for r in everything if r.name == args.name and args.kind in (None, r.kind)]
    shown = {(kind_of(r.kind).key, r.name) for r in records}
    for unset in reading.unset:  # those of the plugin shown are in what is shown (unset:), said once
        if unset.where[:2] not in shown:
            note_unset(unset)
    if not records:
        hint = did_you_mean(args.name, {r.name for r in everything if args.kind in (None, r.kind)})
        print(f"no installed plugin is named {args.name!r}{hint} (see: loopai plugins list --all)", file=sys.stderr)
        return 2
    from loopai.cli._order import _loaded_host, order_lines

    described = [_described(record, config, reading, strict_of(args, config)) for record in records]
    # A plugin's place in the call order depends on the others: the selected ones are loaded for it,
    # only when this one would load (a plugin that is off or broken imports nothing here).
    host = _loaded_host(args, config) if any(r.status == "ok" and r.selected for r in records) else None
    for info, record in zip(described, records, strict=True):
        info["order"] = order_lines(host, record.kind, record.name) if host is not None else []
        if host is not None:
            _settled_among_the_others(info, record, host, config)
    if args.json:
        print(json.dumps(described, indent=2, default=str))
    else:
        for info in described:
            _print(info)
    return 0


def _settled_among_the_others(info: dict[str, Any], record: Any, host: Any, config: Any) -> None:
    """What loading it beside the other selected plugins settled: a plugin whose required plugins are
    not there is ``missing-plugin`` (loaded alone, it looked ``ok``), and its constraints and place."""
    settled = next((r for r in host.discovered if (r.kind, r.name) == (record.kind, record.name)), None)
    if settled is None:
        return
    facts = settled.to_dict()
    for key in ("status", "enabled", "loaded", "requires_plugins", "run_before", "run_after", "position", "placed_by"):
        info[key] = facts[key]
    if settled.reason and info["reason"] != settled.reason:
        [info["reason"]] = config.with_lines([settled.reason])


def _described(record: Any, config: Any, reading: Reading, strict: bool) -> dict[str, Any]:
    """Everything ``show`` says about one plugin, JSON-ready; loads it (when selected) to say it."""
    from loopai._plugin import Plugin
    from loopai._redact import redact
    from loopai.discovery import load_discovered
    from loopai.registry import PluginRegistry

    registry = PluginRegistry()
    with plugin_output_to_stderr():
        load_discovered([record], registry, config, strict=strict)
    record.warnings = config.with_lines(record.warnings)  # about its settings: where they are written
    if record.reason:
        [record.reason] = config.with_lines([record.reason])
    kind = kind_of(record.kind)
    plugin = registry.resolve(kind.base, record.name)
    entry = config.plugins.find(record.kind, record.name)
    info: dict[str, Any] = {
        **record.to_dict(),
        "summary": record.summary,
        "path": record.path,
        "selected": record.selected,
        "checks": [{"ok": check.ok, "message": check.message} for check in record.checks or ()],
        "plugin_version": None,
        "author": None,
        "settings": None,
        "settings_loaded": plugin is not None,
        "settings_schema": None,
        "unset": [unset.problem for unset in reading.unset if unset.where[:2] == (kind.key, record.name)],
    }
    if plugin is not None:
        info["priority"] = record.priority if record.priority is not None else plugin.priority  # configured wins
        info["plugin_version"], info["author"] = plugin.version, plugin.author or None
        info["settings"] = redact(plugin.config)
        model = type(plugin).Config if isinstance(plugin, Plugin) else None
        info["settings_schema"] = settings_schema(model) if model is not None else []
    else:
        if entry is not None:
            # Without its settings model nothing tells which text is a secret: hide all of it.
            info["settings"] = _hide_text(entry.configuration)
        cls = _plugin_class(record, entry) if record.status == "failed" else None
        if cls is not None:  # it failed once imported (a default that breaks its constraints, say)
            info["settings_schema"] = settings_schema(cls.Config) if cls.Config is not None else []
            info["settings_schema_from"] = "class"
    for unset in reading.unset:
        if unset.where[:3] == (kind.key, record.name, "configuration") and isinstance(info["settings"], dict):
            info["settings"][unset.where[3]] = unset.shown()
    return info


def _plugin_class(record: Any, entry: Any) -> Any:
    """The plugin class that ``record`` (or its configuration entry's factory) names, when it imports
    (it was imported already, loading the plugin) and is a plugin class; else None."""
    from importlib.metadata import EntryPoint

    from loopai._isolation import Raised, attempt
    from loopai._plugin import Plugin

    value = getattr(entry, "factory", None) or record.value
    with plugin_output_to_stderr():
        found = attempt(EntryPoint(record.name, value, record.group).load)
    if isinstance(found, Raised) or not (isinstance(found, type) and issubclass(found, Plugin)):
        return None
    return found


def _print(info: dict[str, Any]) -> None:
    print(f"{info['name']}  ({info['kind']})")
    print(f"  distribution:  {info['distribution']} {info['version']}")
    if info["summary"]:
        print(f"  summary:       {info['summary']}")
    print(f"  entry point:   [{info['group']}] {info['entry_point']}")
    print(f"  installed at:  {info['path']}")
    print(f"  status:        {info['status']}" + (f": {info['reason']}" if info["reason"] else ""))
    print(f"  selection:     {'on' if info['selected'] else 'off'}: {info['selected_by']}")
    for warning in info["warnings"]:
        print(f"  warning:       {warning}")
    for unset in info["unset"]:
        print(f"  unset:         {unset}")
    print("  requirements:")
    for check in info["checks"]:
        print(f"    [{'ok' if check['ok'] else 'FAIL'}] {check['message']}")
    if not info["checks"]:
        print("    (none)")
    if info["settings_loaded"]:
        print(f"  priority:      {info['priority']}")
        print(f"  version:       {info['plugin_version']}  author: {info['author'] or '-'}")
    settings = json.dumps(info["settings"], default=str, sort_keys=True)
    if info["settings_loaded"]:
        print(f"  settings:      {settings}")
    elif info["settings"] is not None:
        print(f"  settings:      {settings} (not loaded: text values hidden)")
    for line in info["order"]:
        print(f"  {line}")
    _print_schema(info["settings_schema"], info.get("settings_schema_from") == "class")


def _print_schema(schema: list[dict[str, Any]] | None, from_class: bool = False) -> None:
    if schema is None:
        print("  settings schema: not known (the plugin was not loaded)")
        return
    title = "settings schema (of its class: the plugin was not loaded)" if from_class else "settings schema"
    if not schema:
        print(f"  {title}: takes no settings")
        return
    print(f"  {title}:")
    rows = [(f["name"], f["type"], _default(f)) for f in schema]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row, field in zip(rows, schema, strict=True):
        cells = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print(f"    {cells}  {field['description'] or ''}".rstrip())
    if any(field.get("default_breaks_constraints") for field in schema):
        print(
            "  (invalid): the default breaks the field's own constraints, and the host refuses the plugin "
            "unless the configuration sets the value; fix the default in the plugin (or ask its maintainers to)"
        )


def _default(field: dict[str, Any]) -> str:
    if field["required"]:
        return "required"
    shown = "default (none)" if field["default"] is None else f"default {json.dumps(field['default'])}"
    return f"{shown} (invalid)" if field.get("default_breaks_constraints") else shown


def settings_schema(model: type[BaseModel]) -> list[dict[str, Any]]:
    """One entry per setting of ``model``: name, type (with its bounds), required, default, description, secret,
    and whether the default breaks the field's own constraints."""
    from loopai._isolation import Raised, attempt
    from loopai._plugin import broken_defaults
    from loopai._redact import REDACTED, holds_secret

    docs = _attribute_docs(model)
    broken = attempt(broken_defaults, model, None, "")  # the host refuses such a default wherever it is used
    broken = {} if isinstance(broken, Raised) else broken  # the model's own validator raised: said when loading
    by_name = bool(model.model_config.get("populate_by_name"))  # then the field's name is written, its alias too
    schema = []
    for name, field in model.model_fields.items():
        required = field.is_required()
        default = None if required else field.get_default(call_default_factory=True)
        secret = holds_secret(field.annotation)
        written = name if by_name or field.alias is None else field.alias
        description = field.description or docs.get(name)
        if field.alias not in (None, written):
            description = f"{description or ''} (also read as {field.alias})".strip()
        schema.append(
            {
                "name": written,
                "type": _type_name(field.annotation) + _bounds(field.metadata),
                "required": required,
                "default": REDACTED if secret and default not in (None, "") else _plain(default),
                "description": description,
                "secret": secret,
                "default_breaks_constraints": name in broken,
            }
        )
    return schema


def _type_name(annotation: Any) -> str:
    import typing

    if isinstance(annotation, type) and typing.get_origin(annotation) is None:
        return annotation.__name__
    text = str(annotation)
    for noise in ("typing.", "collections.abc.", "pydantic.types.", "loopai._models."):
        text = text.replace(noise, "")
    return text.replace("NoneType", "None")


def _bounds(metadata: list[Any]) -> str:
    """``, >= 0, <= 1`` from annotated-types constraints (``Field(ge=0, le=1)``)."""
    signs = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "min_length": "length >=", "max_length": "length <="}
    said = []
    for constraint in metadata:
        for attribute, sign in signs.items():
            bound = getattr(constraint, attribute, None)
            if bound is not None:
                shown = int(bound) if isinstance(bound, float) and bound.is_integer() else bound
                said.append(f"{sign} {shown}")
    return f", {', '.join(said)}" if said else ""


def _plain(value: Any) -> Any:
    """A default as JSON can show it (enums by value, other objects as text)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return getattr(value, "value", str(value))


def _attribute_docs(model: type) -> dict[str, str]:
    """The docstrings written under a model's fields (``x: int = 1`` then ``\"\"\"What x is.\"\"\"``).

    Python keeps no such docstrings at run time; they are read from the source, when it is there.
    """
    import ast
    import inspect
    import itertools
    import textwrap

    from pydantic import BaseModel

    docs: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not issubclass(cls, BaseModel) or cls is BaseModel:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for field, text in itertools.pairwise(body):
            if (
                isinstance(field, ast.AnnAssign)
                and isinstance(field.target, ast.Name)
                and isinstance(text, ast.Expr)
                and isinstance(text.value, ast.Constant)
                and isinstance(text.value.value, str)
            ):
                docs[field.target.id] = inspect.cleandoc(text.value.value)
    return docs


def _hide_text(value: Any) -> Any:
    from loopai._redact import REDACTED

    if isinstance(value, (str, bytes)):
        return REDACTED if value else value
    if isinstance(value, dict):
        return {key: _hide_text(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_hide_text(item) for item in value]
    return value
