"""Every exception loopai raises: one base class, messages that name the plugin and the fix."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from loopai._redact import SECRET_KEY, EnvValue, field_of, holds_secret, is_secret_env, redact, submodel_of
from loopai._suggest import did_you_mean

__all__ = [
    "ConfigError",
    "DuplicatePluginError",
    "LoopaiError",
    "OutboxError",
    "PluginError",
    "PluginSettingsError",
    "PluginSignatureError",
    "StartupError",
    "choice_hint",
    "describe_validation_error",
]


class LoopaiError(Exception):
    """Base class of every error loopai raises on purpose."""


class OutboxError(LoopaiError):
    """The outbox cannot be used: a damaged file, a full disk, a lock held too long.

    ``path`` names the outbox; the message says what happened and what to do. Nothing
    emitted before is lost: what the file held stays in it.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


class HostStateError(LoopaiError):
    """A call the host cannot take as it is: it is closed (build a new host), or it was never
    started and the call needs it started (start it first)."""


class PluginError(LoopaiError):
    """A plugin was refused; ``plugin`` is its name (or a description when it has none)."""

    def __init__(self, plugin: str, message: str) -> None:
        super().__init__(message)
        self.plugin = plugin


class PluginSignatureError(PluginError):
    """A hook implementation's arguments do not match the hookspec."""


class DuplicatePluginError(PluginError):
    """A second plugin of one kind tried to take a name that is already registered."""


class PluginSettingsError(PluginError):
    """A plugin's configured settings do not fit its settings model.

    ``problems`` holds one line per wrong field, already prefixed with where it came from.
    """

    def __init__(self, plugin: str, problems: Sequence[str]) -> None:
        super().__init__(plugin, "\n".join(problems))
        self.problems = list(problems)


class ConfigError(LoopaiError):
    """A configuration file or value is wrong; ``problems`` lists every error, one per line."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class StartupError(LoopaiError):
    """Strict mode found problems while building a host; ``problems`` lists all of them."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"{len(self.problems)} plugin problem(s) in strict mode:\n{lines}\n"
            "Fix them, or turn strict mode off (strict = false, LOOPAI_STRICT_PLUGINS=0) "
            "to start without the broken plugins."
        )


_TEMPLATES: dict[str, str] = {
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "missing": "is required",
    "extra_forbidden": "is not a known setting",
    "string_too_short": "must have at least {min_length} character(s)",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
    "model_type": "must be a table (an object in JSON)",
    "dict_type": "must be a table (an object in JSON)",
}


def _location(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if item == "[key]":
            continue  # pydantic's mark of a key that is wrong: the key itself is the place
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif parts:
            parts.append(f".{item}")
        else:
            parts.append(str(item))
    return "".join(parts)


def _bound(value: Any) -> Any:
    # pydantic turns ``le=1`` on a float field into 1.0; show the bound as it was written.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_validation_error(
    error: ValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> list[str]:
    """One short line per pydantic error: ``prefix.field: must be <= 1 (got 1.5)``.

    ``prefix`` is joined to each error's location with a dot. An unknown key gets the
    closest known ones of ``model`` (``did you mean 'sampling_rate'?``), and a value read
    from ``${VAR}`` or a ``LOOPAI_*`` variable names that variable. The refused input is shown
    only when it cannot be a secret: never for a field whose name looks secret, a
    ``SecretStr``/``SecretBytes`` field of ``model`` (the validated model, when known) or a
    value read from a ``${VAR}`` whose name looks secret; a table or list input is shown
    through :func:`redact`.
    """
    lines: list[str] = []
    for item in error.errors(include_url=False):
        where = _location(tuple(item["loc"]))
        where = f"{prefix}.{where}" if prefix and where else (prefix or where or "(root)")
        template = _TEMPLATES.get(item["type"])
        ctx = {key: _bound(value) for key, value in (item.get("ctx") or {}).items()}
        message = template.format(**ctx) if template else _decapitalised(item["msg"])
        if item["type"] == "extra_forbidden" and model is not None and item["loc"]:
            known = _model_at(model, tuple(item["loc"][:-1]))
            if known is not None:
                name = str(item["loc"][-1])
                message += _table_with(model, name, known) or _suggestion(name, known.model_fields)
        elif item["type"] not in ("missing", "duplicate_task_id") and "input" in item:  # those name what is wrong
            message += _got(item["input"], tuple(item["loc"]), model) + choice_hint(item)
        lines.append(f"{where}: {message}")
    return lines


def _table_with(model: type[BaseModel], name: str, here: type[BaseModel]) -> str:
    """``; [dispatch] has a setting of that name`` when a table of ``model`` (one level down) other
    than ``here`` has the field ``name``: a setting written in the wrong table."""
    tables = [
        table
        for table, field in model.model_fields.items()
        if (sub := submodel_of(field.annotation)) is not None and sub is not here and name in sub.model_fields
    ]
    return f"; [{tables[0]}] has a setting of that name" if len(tables) == 1 else ""


def _decapitalised(text: str) -> str:
    """pydantic's message to follow ``field:``: ``Input should...`` as ``input should...``, but ``UUID...`` kept."""
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


_QUOTED: Final = re.compile(r"'((?:[^'\\]|\\.)*)'")


def choice_hint(error: Mapping[str, Any]) -> str:
    """``; did you mean 'validation.failed'?`` for a pydantic error refusing a string that is not
    one of an enum's or a literal's values but is close to one; else ``""``."""
    given = error.get("input")
    if error.get("type") not in ("enum", "literal_error") or not isinstance(given, str):
        return ""
    return did_you_mean(given, _QUOTED.findall(str((error.get("ctx") or {}).get("expected", ""))))


_ALSO_WRITTEN: dict[str, frozenset[str]] = {
    "configuration": frozenset({"settings", "config", "options", "params", "parameters"}),
}
"""Known names other tools use for a field: too far from its spelling for ``did you mean`` to find."""


_LISTED_AT_MOST: Final = 8
"""A table with at most this many settings lists them when a name is close to none of them."""


def _suggestion(name: str, fields: Iterable[str]) -> str:
    fields = list(fields)
    close = did_you_mean(name, fields)
    if close:
        return close
    synonym = next((field for field in fields if name.lower() in _ALSO_WRITTEN.get(field, ())), None)
    if synonym:
        return f"; did you mean {synonym!r}?"
    return f" (the known ones: {', '.join(fields)})" if 0 < len(fields) <= _LISTED_AT_MOST else ""


def _got(value: Any, loc: tuple[int | str, ...], model: type[BaseModel] | None) -> str:
    """`` (got 1.5)``, `` (got '1.5' from LOOPAI_X)``, `` (from ${TOKEN})`` for a secret, or nothing."""
    shown = _shown_input(value, loc, model)
    origin = ""
    if isinstance(value, EnvValue) and value.variables:
        origin = "from " + " and ".join(f"${{{name}}}" for name in value.variables)
    if shown is None:
        return f" ({origin})" if origin else ""
    return f" (got {shown}{' ' + origin if origin else ''})"


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The (sub)model that holds the value at ``loc`` (list indexes and table keys are stepped over)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return None
        if isinstance(part, int):
            continue
        field = field_of(current, part)
        if field is None:
            continue  # a key of a table (``tasks."<id>"``): the model of its values comes next
        current = submodel_of(field.annotation)
    return current


def _shown_input(value: Any, loc: tuple[int | str, ...], model: type[BaseModel] | None) -> str | None:
    if is_secret_env(value) or any(isinstance(part, str) and SECRET_KEY.search(part) for part in loc):
        return None
    for part in loc:  # down the settings model to the refused value's own (sub)model
        if isinstance(part, int) or model is None:
            continue
        field = field_of(model, part)
        if field is not None and holds_secret(field.annotation):
            return None
        model = submodel_of(field.annotation) if field is not None else None
    return _shown(redact(value, model=model))
