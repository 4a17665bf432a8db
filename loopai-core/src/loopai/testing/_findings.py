"""What a contract check found: problems, notes and the first exception; identity and settings checks."""

from __future__ import annotations

import json
import re
import sys
import types
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, Final

from packaging.version import InvalidVersion, Version
from pydantic import BaseModel

from loopai._errors import PluginSettingsError
from loopai._isolation import Raised, attempt
from loopai._kinds import KINDS
from loopai._models import WebhookEventType
from loopai._plugin import Plugin, WebhookHandlerPlugin, broken_defaults, validate_settings
from loopai.testing._note import PluginContractNote

__all__ = ["Findings", "check_identity", "construct", "describe", "settings_problems", "who"]

_UNKNOWN_KEY: Final = "loopai_testing_unknown_key"
_NAME: Final = re.compile(r"^[A-Za-z0-9_-]+$")


class Findings:
    """Problems found in one plugin (the same problem in many cases is listed once), the first
    exception its code raised, and notes: recommendations that are problems only when ``strict``."""

    def __init__(self, who: str, *, strict: bool = False) -> None:
        self.who = who
        self.strict = strict
        self.problems: dict[str, list[str]] = {}
        self.notes: list[str] = []
        self.cause: BaseException | None = None
        self.hooks: set[str] = set()
        """Hooks already found broken when called directly (a host would only repeat it)."""
        self.hung: set[str] = set()
        """Hooks that did not return (not called again, nor through a host)."""

    def recommend(self, advice: str) -> None:
        if self.strict:
            self.add(advice)
        else:
            self.notes.append(advice)

    def add(self, problem: str, cause: BaseException | None = None, *, case: str | None = None) -> None:
        cases = self.problems.setdefault(problem, [])
        if case is not None:
            cases.append(case)
        if self.cause is None and cause is not None:
            self.cause = cause

    def raise_if_any(self) -> None:
        if not self.problems:
            return
        lines = "\n".join(f"  - {problem}{_cases(cases)}" for problem, cases in self.problems.items())
        message = f"{self.who} breaks loopai's plugin contract ({len(self.problems)} problem(s)):\n{lines}"
        if self.notes:
            message += "\nand, not a failure:\n" + "\n".join(f"  - {note}" for note in self.notes)
        raise AssertionError(message) from self.cause

    def finish(self) -> None:
        """Raise for the problems; with none, warn of the notes (at the caller of ``check_*``)."""
        self.raise_if_any()
        for note in self.notes:
            warnings.warn(PluginContractNote(f"{self.who}: {note}"), stacklevel=_outside_this_module())


def _outside_this_module() -> int:
    """The ``stacklevel`` that makes a warning point at the first caller outside ``loopai.testing``."""
    frame: types.FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith("loopai.testing"):
        frame, level = frame.f_back, level + 1
    return level


def _cases(cases: list[str]) -> str:
    if not cases:
        return ""
    shown = "; ".join(cases[:3]) + (f"; and {len(cases) - 3} more" if len(cases) > 3 else "")
    return f" [{len(cases)} case(s): {shown}]"


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def who(plugin: object, name: str | None = None) -> str:
    cls = plugin if isinstance(plugin, type) else type(plugin)
    kinds = [kind.label for kind in KINDS if issubclass(cls, kind.base)]
    label = "/".join(kinds) or "plugin"
    shown = name or getattr(plugin, "name", None) or getattr(plugin, "__name__", cls.__name__)
    where = plugin.__name__ if isinstance(plugin, types.ModuleType) else f"{cls.__module__}.{cls.__qualname__}"
    return f"{label} {shown!r} ({where})"


def construct(cls: type[Plugin], settings: Mapping[str, Any] | BaseModel | None, found: Findings) -> Plugin | None:
    try:
        return cls(settings) if settings is not None else cls()
    except PluginSettingsError as exc:
        if _defaults_broken(cls):
            return None  # said by settings_problems, which names the default
        if settings is None:
            found.add(
                f"{cls.__name__}() refused its default settings ({exc}); give every setting a default, "
                "or pass example settings: check_plugin(MyPlugin, settings={...})",
                exc,
            )
        else:
            found.add(f"{cls.__name__}(settings) refused the given settings: {exc}", exc)
    except Exception as exc:
        found.add(f"{cls.__name__}({'settings' if settings is not None else ''}) raised {describe(exc)}", exc)
    return None


def _defaults_broken(cls: type[Plugin]) -> bool:
    model = getattr(cls, "Config", None)
    return isinstance(model, type) and issubclass(model, BaseModel) and bool(_broken_defaults(model, ""))


def _broken_defaults(model: type[BaseModel], where: str) -> dict[str, list[str]]:
    """:func:`loopai._plugin.broken_defaults` of the defaults alone; none when a validator of the
    model's own raises something odd (the settings checks say that)."""
    broken = attempt(broken_defaults, model, None, where)
    return {} if isinstance(broken, Raised) else broken


def check_identity(plugin: Plugin, found: Findings) -> None:
    name = plugin.name
    if not isinstance(name, str) or not name:
        found.add("name is not set: give the class a name, e.g. name = 'my-plugin'")
    elif not _NAME.match(name):
        found.add(
            f"name {name!r} must be usable as an entry point name and a bare TOML key: "
            "letters, digits, '-' and '_' only (e.g. 'business-rules')"
        )
    version = plugin.version
    if version is None or version in ("", "0.0.0"):
        found.recommend(
            f"version is not set (got {version!r}): set version = '1.2.3', "
            "usually your distribution's version (a module plugin: a module-level version or __version__); "
            "recommended for a packaged plugin, shown by loopai plugins list"
        )
    elif not isinstance(version, str):
        found.add(f"version must be a str (e.g. '1.2.3'), got {type(version).__name__}")
    else:
        try:
            Version(version)
        except InvalidVersion:
            found.add(f"version {version!r} is not a valid PEP 440 version (e.g. '1.2.3')")
    if not isinstance(plugin.description, str):
        found.add(f"description must be a str, got {type(plugin.description).__name__}")
    timeout = plugin.timeout
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        found.add(f"timeout must be None or a positive number of seconds, got {timeout!r}")
    if isinstance(plugin, WebhookHandlerPlugin):
        _check_handler_identity(plugin, found)


def _check_handler_identity(plugin: WebhookHandlerPlugin, found: Findings) -> None:
    retries = plugin.max_retries
    if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int) or retries < 0):
        found.add(f"max_retries must be None or an int >= 0, got {retries!r}")
    events = plugin.supported_events
    if isinstance(events, (str, bytes)) or not isinstance(events, Iterable):
        found.add(f"supported_events must be a collection of event types, got {type(events).__name__}")
        return
    listed = list(events)
    for event in listed:
        try:
            WebhookEventType(event)
        except ValueError:
            found.add(f"supported_events: {event!r} is not a loopai event type (e.g. 'program.execution.failed')")
    if not listed:
        found.add("supported_events is empty: the handler would never be called")


def settings_problems(cls: type[Plugin], settings: Mapping[str, Any] | BaseModel | None, found: Findings) -> None:
    model = getattr(cls, "Config", None)
    if model is None:
        return
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        found.add(f"Config must be a pydantic model (class Config(pydantic.BaseModel)), got {model!r}")
        return
    where = f"{cls.__name__}.Config"
    broken = _broken_defaults(model, where)  # what the host refuses wherever the default is used
    if broken:
        lines = "\n".join(line for said in broken.values() for line in said)
        found.add(f"{where}: a default breaks its own field's constraints; fix the default:\n{lines}")
        return
    try:
        built = validate_settings(model, settings, where)
    except PluginSettingsError as exc:
        given = "the given settings" if settings is not None else "no settings (every field needs a default)"
        found.add(f"{where} does not build from {given}: {exc}", exc)
        return
    except Exception as exc:  # a validator of the model's own raised something odd
        found.add(f"{where} raised {describe(exc)} while validating settings", exc)
        return
    raw = built.model_dump() if isinstance(built, BaseModel) else {}
    try:
        validate_settings(model, {**raw, _UNKNOWN_KEY: 1}, where)
    except PluginSettingsError:
        pass
    except Exception as exc:
        found.add(f"{where} raised {describe(exc)} on an unknown key instead of refusing it", exc)
    else:
        found.add(f"{where} accepted an unknown key {_UNKNOWN_KEY!r}: settings with typos would pass silently")
    try:
        written = json.loads(json.dumps(built.model_dump(mode="json") if isinstance(built, BaseModel) else {}))
        validate_settings(model, written, where)
    except Exception as exc:
        found.add(
            f"{where}: the settings do not survive a JSON round trip ({describe(exc)}); "
            "use types that can be written in loopai.toml",
            exc,
        )
