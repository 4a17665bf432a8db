"""The plugin registry: register, resolve and list plugins by kind, safely from many threads."""

from __future__ import annotations

import builtins
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from loopai._errors import DuplicatePluginError, PluginError
from loopai._isolation import defined_at
from loopai._kinds import KINDS, Kind, kind_of
from loopai._models import WebhookEventType
from loopai._plugin import Plugin, WebhookHandlerPlugin
from loopai.registry._adapters import default_name, watch_module
from loopai.registry._parse import Parser, RegisteredPlugin, instance_dict

__all__ = ["PluginRegistry", "supported_events"]

P = TypeVar("P", bound=Plugin)


def supported_events(plugin: Plugin) -> frozenset[WebhookEventType]:
    """The event types webhook handler ``plugin`` takes, from its ``supported_events``
    (None: every type). Raises :class:`loopai.PluginError` naming the plugin, the value
    that is no event type and the valid ones."""
    declared = getattr(plugin, "supported_events", None)
    if declared is None:
        return frozenset(WebhookEventType)
    if isinstance(declared, (str, WebhookEventType)):
        declared = [declared]
    try:
        values = builtins.list(declared)
    except TypeError:
        raise PluginError(
            plugin.name,
            f"webhook handler {plugin.name!r}: supported_events must be a list of event types, "
            f"got {type(declared).__name__}",
        ) from None
    events = set()
    for value in values:
        try:
            events.add(WebhookEventType(value))
        except ValueError:
            choices = ", ".join(e.value for e in WebhookEventType)
            raise PluginError(
                plugin.name,
                f"webhook handler {plugin.name!r}: supported_events: {value!r} is not an event type; "
                f"use any of {choices} (or their C# names, e.g. ProgramExecutionFailed)",
            ) from None
    return frozenset(events)


def _check_initialised(plugin: Plugin, label: str) -> None:
    """Refuse a plugin whose class's ``__init__`` did not call ``Plugin.__init__``: it lacks the
    ``config`` and ``metadata`` every host reads, and would fail at each call instead of here."""
    own = instance_dict(plugin)
    missing = [attr for attr in ("config", "metadata") if attr not in own and not hasattr(type(plugin), attr)]
    if not missing:
        return
    cls = type(plugin)
    owner = next((base for base in cls.__mro__ if "__init__" in base.__dict__), cls)
    init = defined_at(owner.__dict__.get("__init__"))
    at = f" ({init[0]}:{init[1]})" if init is not None else ""
    written = defined_at(cls)
    where = f" ({written[0]}:{written[1]})" if written is not None and owner is not cls else ""
    raise PluginError(
        label,
        f"plugin {label!r} ({cls.__module__}.{cls.__qualname__}{where}) was never set up as a loopai plugin: "
        f"{owner.__qualname__}.__init__{at} does not call super().__init__(), so it has no "
        f"{' and no '.join(missing)}; call super().__init__(*args, **kwargs) in {owner.__qualname__}.__init__",
    )


class PluginRegistry:
    """All registered plugins, by kind (the seed's ``IPluginRegistry``).

    ``kind`` is the base class (``loopai.SamplerPlugin``...) or its label
    (``"sampler"``). Every method is safe to call from many threads at once. Listing is
    by ``priority`` descending, then name; a plugin's ``enabled`` and ``priority`` are
    read at each listing, so changes take effect on the next call.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._entries: dict[type[Plugin], dict[str, RegisteredPlugin]] = {kind.base: {} for kind in KINDS}
        self._generation = 0
        self._tracked: weakref.WeakSet[Any] = weakref.WeakSet()  # built for this generation; see _track()
        self._parser = Parser()

    # -- registration -----------------------------------------------------------------

    def register(
        self, plugin: object, *, name: str | None = None, kinds: Iterable[Kind | type[Plugin] | str] | None = None
    ) -> list[RegisteredPlugin]:
        """Register ``plugin`` under every kind it implements and return its entries.

        ``plugin`` is a :class:`loopai.Plugin` instance (its kinds come from its base
        classes) or any module or object with ``@loopai.hookimpl`` functions (its kinds come
        from the hooks it implements). ``name`` overrides the plugin's own name; ``kinds``
        limits registration to those kinds (discovery registers an entry point only under
        the kind of its group).

        Raises :class:`loopai.PluginSignatureError` when an implementation's arguments are
        not in the hookspec or a hook name is unknown, :class:`loopai.DuplicatePluginError`
        when the name is taken for one of its kinds, and :class:`loopai.PluginError` when
        it implements no kind at all or a handler's ``supported_events`` names no event
        type. Nothing is registered when it raises.

        A plain module becomes an instance of a ``ModuleType`` subclass whose attribute
        setter passes ``enabled``, ``priority``, ``timeout``, ``supported_events`` and
        ``max_retries`` on to its plugin entries: ``module.enabled = False`` takes
        effect on the next call. Another object's values are read once, here; change
        them on ``resolve(kind, name)``.
        """
        if isinstance(plugin, type):
            raise PluginError(
                plugin.__name__,
                f"{plugin.__name__} is a class; register an instance of it, e.g. {plugin.__name__}()",
            )
        is_plugin = isinstance(plugin, Plugin)
        label = name or (plugin.name if is_plugin else default_name(plugin))  # type: ignore[attr-defined]
        if is_plugin:
            _check_initialised(plugin, label)  # type: ignore[arg-type]
        entries = self._parser.entries(plugin, label, is_plugin)
        if kinds is not None:
            wanted = [kind_of(k) for k in kinds]
            entries = [e for e in entries if kind_of(e.kind) in wanted]
            if not entries:
                names = " or ".join(k.title for k in wanted)
                raise PluginError(label, f"plugin {label!r} is declared as a {names} but does not implement its hook")
        for entry in entries:
            if entry.kind is WebhookHandlerPlugin:
                supported_events(entry.plugin)  # a wrong event type is refused here, not at every emit
        with self._lock:
            for entry in entries:
                if entry.name in self._entries[entry.kind]:
                    taken = self._entries[entry.kind][entry.name].plugin
                    raise DuplicatePluginError(
                        entry.name,
                        f"a {kind_of(entry.kind).title} named {entry.name!r} is already registered ({taken!r}); "
                        "unregister it first or give this one another name",
                    )
            for entry in entries:
                self._entries[entry.kind][entry.name] = entry
                entry.plugin._loopai_watch(self)
                if not is_plugin:  # an adapter: the module it wraps reports its switches to it
                    watch_module(entry.plugin)
            self._changed()
        return entries

    # -- queries ------------------------------------------------------------------------

    def unregister(self, kind: Kind | type[Plugin] | str, name: str) -> bool:
        """Remove the plugin ``name`` of ``kind``; True when there was one."""
        kind = kind_of(kind).base
        with self._lock:
            entry = self._entries[kind].pop(name, None)
            if entry is None:
                return False
            if not any(e.plugin is entry.plugin for table in self._entries.values() for e in table.values()):
                entry.plugin._loopai_unwatch(self)
            self._changed()
            return True

    def resolve(self, kind: type[P], name: str) -> P | None:
        """The plugin ``name`` of ``kind``, enabled or not; None when there is none."""
        entry = self.entry(kind, name)
        return entry.plugin if entry is not None else None  # type: ignore[return-value]

    def entry(self, kind: Kind | type[Plugin] | str, name: str) -> RegisteredPlugin | None:
        """The registry's record of plugin ``name`` of ``kind``, or None."""
        with self._lock:
            return self._entries[kind_of(kind).base].get(name)

    def list(self, kind: type[P], enabled_only: bool = True) -> builtins.list[P]:
        """Plugins of ``kind``, highest priority first, then by name."""
        return [e.plugin for e in self.entries(kind, enabled_only)]  # type: ignore[misc]

    def entries(self, kind: Kind | type[Plugin] | str, enabled_only: bool = True) -> builtins.list[RegisteredPlugin]:
        """Like :meth:`list`, but the registry's records (name, call, lifecycle hooks)."""
        with self._lock:
            entries = builtins.list(self._entries[kind_of(kind).base].values())
        if enabled_only:
            entries = [e for e in entries if e.plugin.enabled]
        entries.sort(key=lambda e: (-e.plugin.priority, e.name))
        return entries

    def count(self, kind: Kind | type[Plugin] | str, enabled_only: bool = True) -> int:
        """How many plugins of ``kind`` there are (enabled ones only, by default)."""
        with self._lock:
            entries = builtins.list(self._entries[kind_of(kind).base].values())
        return sum(1 for e in entries if e.plugin.enabled or not enabled_only)

    def contains(self, kind: Kind | type[Plugin] | str, name: str) -> bool:
        """Whether a plugin ``name`` of ``kind`` is registered, enabled or not."""
        with self._lock:
            return name in self._entries[kind_of(kind).base]

    def clear(self, kind: Kind | type[Plugin] | str) -> None:
        """Remove every plugin of ``kind``."""
        kind = kind_of(kind).base
        with self._lock:
            names = builtins.list(self._entries[kind])
        for name in names:
            self.unregister(kind, name)

    def clear_all(self) -> None:
        """Remove every plugin of every kind."""
        for kind in KINDS:
            self.clear(kind.base)

    @property
    def generation(self) -> int:
        """A number that changes whenever what a host would call changes."""
        return self._generation

    def _track(self, view: Any) -> None:
        """Set ``view.stale = True`` at the next change (now, if ``view.generation`` is already old).

        ``view`` is anything built from this registry at ``view.generation`` (a host's
        dispatch snapshot): instead of comparing generations at every call, its user
        checks one flag. Held weakly.
        """
        with self._lock:
            if view.generation != self._generation:
                view.stale = True
            else:
                self._tracked.add(view)

    def _bump(self) -> None:
        with self._lock:
            self._changed()

    def _changed(self) -> None:
        # The caller holds the lock.
        self._generation += 1
        if self._tracked:  # most changes (loading plugins, say) come before any host dispatched
            for view in self._tracked:
                view.stale = True
            self._tracked.clear()

    def __iter__(self) -> Iterator[RegisteredPlugin]:
        """Every entry of every kind, enabled or not, in registration order per kind."""
        with self._lock:
            return iter([e for table in self._entries.values() for e in table.values()])
