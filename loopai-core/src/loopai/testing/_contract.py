"""Contract checks for plugin authors: everything a plugin must do to be a good loopai plugin."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from loopai._kinds import SAMPLER, VALIDATOR, WEBHOOK_HANDLER, Kind
from loopai._plugin import Plugin
from loopai.testing._exercise import entries_of, exercise, exercise_host
from loopai.testing._findings import Findings, check_identity, construct, settings_problems, who

__all__ = ["check_plugin", "check_sampler", "check_settings", "check_validator", "check_webhook_handler"]


def check_settings(plugin: type[Plugin] | Plugin, settings: Mapping[str, Any] | BaseModel | None = None) -> None:
    """Check a plugin's settings model (its nested ``Config``), as the host will use it.

    ``Config`` must be a pydantic model; it must build from ``settings`` (default: no
    settings at all, which is what an unconfigured plugin gets); unknown keys must be
    refused; and the result must survive a JSON round trip (so it can be written in
    ``loopai.toml``). A plugin without ``Config`` takes any table and passes.
    Raises ``AssertionError`` naming the plugin and every problem.
    """
    found = Findings(who(plugin))
    settings_problems(plugin if isinstance(plugin, type) else type(plugin), settings, found)
    found.raise_if_any()


def check_plugin(
    plugin: object,
    *,
    settings: Mapping[str, Any] | BaseModel | None = None,
    max_seconds: float = 5.0,
    dry_run: bool = True,
    strict: bool = False,
) -> None:
    """Check that ``plugin`` keeps loopai's plugin contract, for every kind it implements.

    ``plugin`` is a plugin class (built as the host builds it: with ``settings``, default
    none), a plugin instance, or a module/object of ``@loopai.hookimpl`` functions. Checked:

    - identity: ``name`` usable as an entry point name and TOML key, ``version`` a PEP 440
      version, a positive ``timeout`` if any; for handlers ``supported_events`` and
      ``max_retries``. A missing ``version`` is only recommended: a
      :class:`PluginContractNote` warning (loopai's pytest plugin shows it in the warnings
      summary, even under ``filterwarnings = error``), a problem with ``strict=True``;
    - settings: see :func:`check_settings`;
    - registration: the hooks' signatures are accepted;
    - behaviour: each hook, whether ``def`` or ``async def``, returns the right type
      (``ValidationResult``, ``SamplingDecision``, None for ``handle_event``) and never
      raises, on every :func:`odd_executions` / :func:`odd_events` case with ordinary,
      empty and full contexts, each call within ``max_seconds`` (one that has not returned
      after ``max_seconds * 2 + 1`` is left behind, and its hook not called again); handlers
      are called with ``is_dry_run=dry_run`` (default True: nothing should be sent); a plugin
      with ``isolation = "process"`` only through a host, in its workers (a crash is a problem,
      not the end of the caller's process);
    - in a real host: ``startup``/``shutdown`` and one call from sync and async callers
      run without a reported failure.

    Returns None; raises ``AssertionError`` naming the plugin and listing every problem.
    """
    found = Findings(who(plugin), strict=strict)
    if isinstance(plugin, type):
        if not issubclass(plugin, Plugin):
            raise TypeError(f"{plugin.__name__} is not a loopai plugin class; pass an instance or module")
        settings_problems(plugin, settings, found)
        built = construct(plugin, settings, found)
        if built is None:
            found.raise_if_any()
            return
        plugin = built
    elif isinstance(plugin, Plugin):
        settings_problems(type(plugin), plugin.config if settings is None else settings, found)
    found.who = who(plugin)
    entries = entries_of(plugin, found)
    if not entries:
        found.raise_if_any()
        return
    face = entries[0].plugin  # the plugin itself, or the adapter of a module of hookimpls
    check_identity(face, found)
    configuration = _configuration_of(face)
    isolated = getattr(face, "isolation", "inline") == "process"
    if not isolated:  # an isolated plugin may crash its process: its hooks are only called through a host
        for entry in entries:
            exercise(entry, found, max_seconds, dry_run, configuration)
    exercise_host(plugin, entries, found, dry_run, odd_cases=isolated)
    found.finish()


def _configuration_of(plugin: Plugin) -> dict[str, Any]:
    config = getattr(plugin, "config", None)
    if isinstance(config, BaseModel):
        return config.model_dump()
    return dict(config) if isinstance(config, Mapping) else {}


def _require_kind(plugin: object, kind: Kind) -> None:
    if isinstance(plugin, (type, Plugin)):
        cls = plugin if isinstance(plugin, type) else type(plugin)
        if not issubclass(cls, kind.base):
            raise AssertionError(f"{who(plugin)} is not a {kind.label}: subclass loopai.{kind.base.__name__}")
    elif kind.base not in {entry.kind for entry in entries_of(plugin, Findings(""))}:
        raise AssertionError(f"{who(plugin)} does not implement the {kind.label} hook ({kind.hook})")


def check_validator(
    plugin: object,
    *,
    settings: Mapping[str, Any] | BaseModel | None = None,
    max_seconds: float = 5.0,
    strict: bool = False,
) -> None:
    """:func:`check_plugin`, and ``plugin`` must be a validator."""
    _require_kind(plugin, VALIDATOR)
    check_plugin(plugin, settings=settings, max_seconds=max_seconds, strict=strict)


def check_sampler(
    plugin: object,
    *,
    settings: Mapping[str, Any] | BaseModel | None = None,
    max_seconds: float = 5.0,
    strict: bool = False,
) -> None:
    """:func:`check_plugin`, and ``plugin`` must be a sampler."""
    _require_kind(plugin, SAMPLER)
    check_plugin(plugin, settings=settings, max_seconds=max_seconds, strict=strict)


def check_webhook_handler(
    plugin: object,
    *,
    settings: Mapping[str, Any] | BaseModel | None = None,
    max_seconds: float = 5.0,
    dry_run: bool = True,
    strict: bool = False,
) -> None:
    """:func:`check_plugin`, and ``plugin`` must be a webhook handler."""
    _require_kind(plugin, WEBHOOK_HANDLER)
    check_plugin(plugin, settings=settings, max_seconds=max_seconds, dry_run=dry_run, strict=strict)
