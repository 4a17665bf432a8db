"""The plugin registry: register, resolve and list plugins by kind, safely from many threads."""

from __future__ import annotations

import builtins
import difflib
import inspect
import threading
import types
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, Final, NamedTuple, TypeVar, cast

import pluggy

from loopai._errors import DuplicatePluginError, PluginError, PluginSignatureError
from loopai._hookspecs import HOOK_NAMES, PROJECT, HookSpecs
from loopai._models import WebhookEventType
from loopai._plugin import ALL_EVENTS, Plugin, SamplerPlugin, ValidatorPlugin, WebhookHandlerPlugin, _kebab

__all__ = ["KINDS", "PluginRegistry", "RegisteredPlugin", "kind_from", "supported_events"]

P = TypeVar("P", bound=Plugin)

KINDS: Final[tuple[type[Plugin], ...]] = (ValidatorPlugin, SamplerPlugin, WebhookHandlerPlugin)
HOOK_OF_KIND: Final[dict[type[Plugin], str]] = {
    ValidatorPlugin: "validate",
    SamplerPlugin: "should_sample",
    WebhookHandlerPlugin: "handle_event",
}
_KIND_OF_HOOK: Final = {hook: kind for kind, hook in HOOK_OF_KIND.items()}
_SPEC_ARGS: Final[dict[str, tuple[str, ...]]] = {
    name: tuple(p for p in inspect.signature(getattr(HookSpecs, name)).parameters if p != "self") for name in HOOK_NAMES
}
_KIND_ALIASES: Final[dict[str, type[Plugin]]] = {
    "validator": ValidatorPlugin,
    "validators": ValidatorPlugin,
    "sampler": SamplerPlugin,
    "samplers": SamplerPlugin,
    "webhook-handler": WebhookHandlerPlugin,
    "webhook-handlers": WebhookHandlerPlugin,
    "webhookhandler": WebhookHandlerPlugin,
    "webhookhandlers": WebhookHandlerPlugin,
    "webhook_handler": WebhookHandlerPlugin,
    "webhook_handlers": WebhookHandlerPlugin,
}
_PLAIN_OPTS: Final[pluggy.HookimplOpts] = {
    "wrapper": False,
    "hookwrapper": False,
    "optionalhook": False,
    "tryfirst": False,
    "trylast": False,
    "specname": None,
}


def kind_from(kind: type[Plugin] | str) -> type[Plugin]:
    """The kind's base class from itself or a label (``"sampler"``, ``"webhook_handlers"``...)."""
    if isinstance(kind, str):
        found = _KIND_ALIASES.get(kind.strip().lower())
        if found is None:
            raise ValueError(f"unknown plugin kind {kind!r}; use validator, sampler or webhook-handler")
        return found
    if kind in KINDS:
        return kind
    raise ValueError(f"unknown plugin kind {kind!r}; use loopai.ValidatorPlugin, SamplerPlugin or WebhookHandlerPlugin")


def spec_signature(hook: str) -> str:
    """``validate(execution, context)``: the signature an implementation may use."""
    return f"{hook}({', '.join(_SPEC_ARGS[hook])})"


_ABSENT: Final = object()
_IMPL_ATTR: Final = f"{PROJECT}_impl"
_ROUTINES: Final = (types.FunctionType, types.MethodType)
"""Where ``@loopai.hookimpl`` puts its options on a function."""
_PLAIN: Final = frozenset({str, bytes, int, float, bool, dict, list, tuple, type(None), types.ModuleType})
"""Types of what modules commonly hold that are no routine (``inspect.isroutine`` is slower)."""


class _Manager(pluggy.PluginManager):
    """Pluggy's manager, used only to parse and check implementations at registration.

    On :class:`loopai.Plugin` instances a method named like a hook is an implementation
    without a decorator; elsewhere only ``@loopai.hookimpl`` functions are.
    """

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> pluggy.HookimplOpts | None:
        if type(plugin) in _MODULES:
            # pluggy asks about every name of a module, and its careful lookup (which skips
            # descriptors) is the bulk of loading a thousand plugins. What a plain module
            # holds that is no routine (data, classes, modules) is never an implementation,
            # for any pluggy; a plain function is one when it carries the marker, unless
            # ModuleType itself has the name (then pluggy decides).
            value = plugin.__dict__.get(name, _ABSENT)
            if value is not _ABSENT:
                if type(value) in _PLAIN or isinstance(value, type):
                    return None
                if type(value) is types.FunctionType and not hasattr(types.ModuleType, name):
                    marked = getattr(value, _IMPL_ATTR, None)
                    return marked if isinstance(marked, dict) else None  # type: ignore[return-value]
                if not inspect.isroutine(value):
                    return None
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and isinstance(plugin, Plugin) and name in HOOK_NAMES:
            return dict(_PLAIN_OPTS)  # type: ignore[return-value]
        return opts


class RegisteredPlugin(NamedTuple):
    """One plugin as the registry holds it for one kind (an immutable record).

    ``plugin`` is a :class:`loopai.Plugin` (for a pluggy-style module or object, an adapter
    whose ``wraps`` is that module or object); ``call`` takes the hook's two arguments
    positionally; ``startup``/``shutdown`` take the host, or are None.
    """

    kind: type[Plugin]
    name: str
    plugin: Plugin
    call: Callable[[Any, Any], Any]
    is_async: bool
    startup: Callable[[Any], Any] | None
    shutdown: Callable[[Any], Any] | None


def _adapt(impl: pluggy.HookImpl, spec_args: tuple[str, ...]) -> Callable[..., Any]:
    """A callable taking the spec's arguments positionally, whatever subset ``impl`` takes."""
    wanted = tuple(impl.argnames) + tuple(a for a in impl.kwargnames if a in spec_args)
    function = impl.function
    if wanted == spec_args:
        return function
    if not wanted:
        return lambda *_: function()
    index = tuple(spec_args.index(a) for a in wanted)
    if index == tuple(range(len(index))):
        return lambda *args: function(*args[: len(index)])
    return lambda *args: function(**{a: args[i] for a, i in zip(wanted, index, strict=True)})


def _is_async(function: Callable[..., Any]) -> bool:
    """``inspect.iscoroutinefunction``, answered from the code flags for a plain function."""
    if type(function) is types.FunctionType and not hasattr(function, "_is_coroutine_marker"):
        return bool(function.__code__.co_flags & inspect.CO_COROUTINE)
    return inspect.iscoroutinefunction(function)


def _attr(obj: object, attr: str, expected: type | tuple[type, ...], default: Any) -> Any:
    # A module's attributes are its __dict__: a missing one costs no AttributeError there.
    value = obj.__dict__.get(attr, default) if type(obj) in _MODULES else getattr(obj, attr, default)
    if value is default:  # most often: not set
        return default
    return value if isinstance(value, expected) and not isinstance(value, property) else default


def _adapter_class(kind: type[Plugin]) -> type[Plugin]:
    hook = HOOK_OF_KIND[kind]

    def hook_method(self: _Adapter, first: Any, second: Any) -> Any:
        return self._loopai_call(first, second)

    namespace = {
        hook: hook_method,
        "__module__": __name__,
        "__doc__": f"A pluggy-style {hook} plugin.",
        "_handles_events": kind is WebhookHandlerPlugin,
    }
    return types.new_class(f"Hookimpl{kind.__name__}", (_Adapter, kind), {}, lambda ns: ns.update(namespace))


_FOLLOWED: Final = ("enabled", "priority", "timeout", "supported_events", "max_retries")
"""What an adapter takes from the module or object it wraps (the last two: handlers only)."""
_ADAPTERS_KEY: Final = "__loopai_adapters__"
"""Where a plugin module keeps weak references to its adapters."""


class _Adapter(Plugin):
    """Gives a module or object of ``@hookimpl`` functions the :class:`loopai.Plugin` face.

    It takes ``enabled``, ``priority``, ``timeout`` and, for a handler,
    ``supported_events`` and ``max_retries`` from what it wraps when registered. A plain
    module keeps them in step afterwards: ``plugin_module.enabled = False`` reaches
    every host on its next call (see :class:`_PluginModule`).
    """

    wraps: object
    _loopai_call: Callable[[Any, Any], Any]
    _handles_events: ClassVar[bool] = False
    """True on the webhook handler adapter (isinstance on the ABC is slow, and this is per plugin)."""

    def __init__(self, wraps: object, name: str, call: Callable[[Any, Any], Any]) -> None:
        # Set directly, not through Plugin.__init__ and the switches: nothing watches a new
        # adapter yet, and discovery builds a thousand of them.
        state = self.__dict__
        state["name"] = name
        state["metadata"] = {}
        state["config"] = {}
        state["_enabled"] = _attr(wraps, "enabled", bool, True)
        state["_priority"] = _attr(wraps, "priority", int, 0)
        state["_timeout"] = _attr(wraps, "timeout", (int, float), None)
        self.wraps = wraps
        self._loopai_call = call
        doc = getattr(wraps, "__doc__", None)
        self.description = _attr(wraps, "description", str, doc.strip().split("\n")[0] if isinstance(doc, str) else "")
        self.version = _attr(wraps, "version", str, _attr(wraps, "__version__", str, "0.0.0"))
        self.author = _attr(wraps, "author", str, "")
        if self._handles_events:
            events = getattr(wraps, "supported_events", None)
            if events is not None:
                self.supported_events = events
            self.max_retries = _attr(wraps, "max_retries", int, None)

    def _loopai_follow(self, attr: str) -> None:
        """Take ``attr`` from the wrapped object again, as ``__init__`` did (the default when
        it has none, or one of the wrong type), and tell the registries that watch this plugin."""
        wraps = self.wraps
        if attr == "enabled":
            self.enabled = _attr(wraps, "enabled", bool, True)
        elif attr == "priority":
            self.priority = _attr(wraps, "priority", int, 0)
        elif attr == "timeout":
            self.timeout = _attr(wraps, "timeout", (int, float), None)
        elif not isinstance(self, WebhookHandlerPlugin):
            return
        elif attr == "supported_events":
            events = getattr(wraps, "supported_events", None)
            self.supported_events = ALL_EVENTS if events is None else events
        elif attr == "max_retries":
            self.max_retries = _attr(wraps, "max_retries", int, None)
        self._loopai_changed()


class _PluginModule(types.ModuleType):
    """The class a plain module gets when it is registered as a plugin.

    Setting (or deleting) one of its ``enabled``, ``priority``, ``timeout``,
    ``supported_events`` or ``max_retries`` from outside (``plugin_module.enabled =
    False``) updates its adapters, so hosts pick the change up on their next call, as
    for a :class:`loopai.Plugin`. Python allows a module's class to be a subclass of
    ``ModuleType`` for exactly this. A function of the module that rebinds a global
    (``global enabled``) writes its dictionary directly and is not seen: change the
    registry's plugin (``registry.resolve(kind, name)``) instead.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in _FOLLOWED:
            _follow(self, name)

    def __delattr__(self, name: str) -> None:
        super().__delattr__(name)
        if name in _FOLLOWED:
            _follow(self, name)


_MODULES: Final = (types.ModuleType, _PluginModule)
"""Module classes whose attributes are exactly their ``__dict__``."""


def _follow(module: types.ModuleType, attr: str) -> None:
    for ref in tuple(module.__dict__.get(_ADAPTERS_KEY, ())):
        adapter = ref()
        if adapter is not None:
            adapter._loopai_follow(attr)


def _watch_module(adapter: _Adapter) -> None:
    """Make a plain module that ``adapter`` wraps report changes of its switches to it."""
    module = adapter.wraps
    if type(module) is types.ModuleType:
        module.__class__ = _PluginModule
    if type(module) is _PluginModule:
        # Append only (atomic): registries in other threads may add theirs at the same time.
        module.__dict__.setdefault(_ADAPTERS_KEY, []).append(weakref.ref(adapter))


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


_ADAPTERS: Final[dict[type[Plugin], type[Plugin]]] = {kind: _adapter_class(kind) for kind in KINDS}


def _default_name(obj: object) -> str:
    given = _attr(obj, "name", str, "")
    if given:
        return str(given)
    if isinstance(obj, types.ModuleType):
        return obj.__name__.rsplit(".", 1)[-1].replace("_", "-")
    return _kebab(type(obj).__name__)


class PluginRegistry:
    """All registered plugins, by kind (the seed's ``IPluginRegistry``).

    ``kind`` is the base class (``loopai.SamplerPlugin``...) or its label
    (``"sampler"``). Every method is safe to call from many threads at once. Listing is
    by ``priority`` descending, then name; a plugin's ``enabled`` and ``priority`` are
    read at each listing, so changes take effect on the next call.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._entries: dict[type[Plugin], dict[str, RegisteredPlugin]] = {kind: {} for kind in KINDS}
        self._generation = 0
        self._tracked: weakref.WeakSet[Any] = weakref.WeakSet()  # built for this generation; see _track()
        self._manager = _Manager(PROJECT)
        self._manager.add_hookspecs(HookSpecs)
        # pluggy's manager is not thread-safe; it is only used to parse, so it has its own lock.
        self._parse_lock = threading.Lock()

    # -- registration -----------------------------------------------------------------

    def register(
        self, plugin: object, *, name: str | None = None, kinds: Iterable[type[Plugin]] | None = None
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
        # Modules first: a module is never a Plugin, and isinstance on an ABC is slow.
        is_plugin = type(plugin) not in _MODULES and isinstance(plugin, Plugin)
        label = name or (plugin.name if is_plugin else _default_name(plugin))  # type: ignore[attr-defined]
        impls = self._parse(plugin, label)
        entries = self._entries_for(plugin, label, impls, is_plugin)
        if kinds is not None:
            wanted = [kind_from(k) for k in kinds]
            entries = [e for e in entries if e.kind in wanted]
            if not entries:
                names = " or ".join(_label(k) for k in wanted)
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
                        f"a {_label(entry.kind)} named {entry.name!r} is already registered ({taken!r}); "
                        "unregister it first or give this one another name",
                    )
            for entry in entries:
                self._entries[entry.kind][entry.name] = entry
                entry.plugin._loopai_watch(self)
                if not is_plugin:  # an adapter: the module it wraps reports its switches to it
                    _watch_module(entry.plugin)  # type: ignore[arg-type]
            self._changed()
        return entries

    def _parse(self, plugin: object, label: str) -> dict[str, pluggy.HookImpl]:
        with self._parse_lock:
            return self._parse_locked(plugin, label)

    def _parse_locked(self, plugin: object, label: str) -> dict[str, pluggy.HookImpl]:
        # The same reading and checks as pluggy's PluginManager.register (its marker
        # parsing, its HookImpl, its argument-name rule), without registering anything:
        # register/unregister bookkeeping was most of the cost of loading many plugins.
        manager = self._manager
        impls: dict[str, pluggy.HookImpl] = {}
        # A plain module's names are its __dict__ (what dir() lists); only its marked
        # functions and bound methods can be implementations, so the rest is not asked about.
        names = (
            [n for n, v in vars(plugin).items() if type(v) in _ROUTINES and hasattr(v, _IMPL_ATTR)]
            if type(plugin) in _MODULES
            else dir(plugin)
        )
        for name in names:
            opts = manager.parse_hookimpl_opts(plugin, name)
            if opts is None:
                continue
            hook = opts.get("specname") or name
            if hook not in _SPEC_ARGS:
                close = difflib.get_close_matches(hook, HOOK_NAMES, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; loopai hooks are {', '.join(HOOK_NAMES)}"
                raise PluginSignatureError(label, f"plugin {label!r} implements unknown hook {hook!r}{hint}")
            impl = pluggy.HookImpl(plugin, label, getattr(plugin, name), opts)
            if impl.wrapper or impl.hookwrapper:
                raise PluginSignatureError(
                    label,
                    f"plugin {label!r}: hook {hook!r} is declared as a wrapper; "
                    "loopai hooks take plain implementations, drop wrapper=True/hookwrapper=True",
                )
            unknown = sorted(set(impl.argnames) - set(_SPEC_ARGS[hook]))
            if unknown:
                raise PluginSignatureError(label, _signature_message(label, hook, impl.function, unknown))
            impls[hook] = impl
        return impls

    def _entries_for(
        self, plugin: object, label: str, impls: dict[str, pluggy.HookImpl], is_plugin: bool
    ) -> list[RegisteredPlugin]:
        def lifecycle(hook: str) -> Callable[[Any], Any] | None:
            impl = impls.get(hook)
            return _adapt(impl, _SPEC_ARGS[hook]) if impl is not None else None

        startup, shutdown = lifecycle("startup"), lifecycle("shutdown")
        if is_plugin:
            kinds = [kind for kind in KINDS if isinstance(plugin, kind)]
            if not kinds:
                raise PluginError(
                    label,
                    f"plugin {label!r} ({type(plugin).__name__}) is not a validator, sampler or webhook handler; "
                    "subclass loopai.ValidatorPlugin, loopai.SamplerPlugin or loopai.WebhookHandlerPlugin",
                )
        else:
            kinds = [_KIND_OF_HOOK[hook] for hook in _KIND_OF_HOOK if hook in impls]
            if not kinds:
                raise PluginError(
                    label,
                    f"plugin {label!r} implements none of validate, should_sample, handle_event; "
                    "mark its functions with @loopai.hookimpl",
                )
        entries = []
        for kind in kinds:
            hook = HOOK_OF_KIND[kind]
            call = _adapt(impls[hook], _SPEC_ARGS[hook])
            face = cast(Plugin, plugin) if is_plugin else _ADAPTERS[kind](plugin, label, call)  # type: ignore[call-arg, arg-type]
            entries.append(
                RegisteredPlugin(
                    kind=kind,
                    name=label,
                    plugin=face,
                    call=call,
                    is_async=_is_async(impls[hook].function),
                    startup=startup,
                    shutdown=shutdown,
                )
            )
        return entries

    # -- queries ------------------------------------------------------------------------

    def unregister(self, kind: type[Plugin] | str, name: str) -> bool:
        """Remove the plugin ``name`` of ``kind``; True when there was one."""
        kind = kind_from(kind)
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

    def entry(self, kind: type[Plugin] | str, name: str) -> RegisteredPlugin | None:
        """The registry's record of plugin ``name`` of ``kind``, or None."""
        with self._lock:
            return self._entries[kind_from(kind)].get(name)

    def list(self, kind: type[P], enabled_only: bool = True) -> builtins.list[P]:
        """Plugins of ``kind``, highest priority first, then by name."""
        return [e.plugin for e in self.entries(kind, enabled_only)]  # type: ignore[misc]

    def entries(self, kind: type[Plugin] | str, enabled_only: bool = True) -> builtins.list[RegisteredPlugin]:
        """Like :meth:`list`, but the registry's records (name, call, lifecycle hooks)."""
        with self._lock:
            entries = builtins.list(self._entries[kind_from(kind)].values())
        if enabled_only:
            entries = [e for e in entries if e.plugin.enabled]
        entries.sort(key=lambda e: (-e.plugin.priority, e.name))
        return entries

    def count(self, kind: type[Plugin] | str, enabled_only: bool = True) -> int:
        """How many plugins of ``kind`` there are (enabled ones only, by default)."""
        with self._lock:
            entries = builtins.list(self._entries[kind_from(kind)].values())
        return sum(1 for e in entries if e.plugin.enabled or not enabled_only)

    def contains(self, kind: type[Plugin] | str, name: str) -> bool:
        """Whether a plugin ``name`` of ``kind`` is registered, enabled or not."""
        with self._lock:
            return name in self._entries[kind_from(kind)]

    def clear(self, kind: type[Plugin] | str) -> None:
        """Remove every plugin of ``kind``."""
        kind = kind_from(kind)
        with self._lock:
            names = builtins.list(self._entries[kind])
        for name in names:
            self.unregister(kind, name)

    def clear_all(self) -> None:
        """Remove every plugin of every kind."""
        for kind in KINDS:
            self.clear(kind)

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


def _label(kind: type[Plugin]) -> str:
    return {ValidatorPlugin: "validator", SamplerPlugin: "sampler", WebhookHandlerPlugin: "webhook handler"}[kind]


def _signature_message(label: str, hook: str, function: Callable[..., Any], unknown: list[str]) -> str:
    try:
        definition = f"{function.__name__}{inspect.signature(function)}"
    except (TypeError, ValueError):
        definition = hook
    names = ", ".join(repr(n) for n in unknown)
    return (
        f"plugin {label!r}: hook {hook!r} is defined as {definition}, but the hookspec is "
        f"{spec_signature(hook)}; rename or remove {names} "
        "(an implementation may take any of the spec's arguments, by name)"
    )
