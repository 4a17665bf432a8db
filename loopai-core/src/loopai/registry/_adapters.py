"""Plain modules and objects of ``@loopai.hookimpl`` functions, given the :class:`loopai.Plugin` face.

An adapter takes ``enabled``, ``priority``, ``timeout`` (and, for a handler,
``supported_events`` and ``max_retries``) from what it wraps; a registered plain module
keeps them in step afterwards (``plugin_module.enabled = False`` reaches every host).
"""

from __future__ import annotations

import types
import weakref
from collections.abc import Callable
from typing import Any, ClassVar, Final

from loopai._case import kebab
from loopai._kinds import KINDS, WEBHOOK_HANDLER, Kind
from loopai._plugin import ALL_EVENTS, Plugin, WebhookHandlerPlugin

__all__ = ["MODULES", "adapter", "default_name", "read_attr", "watch_module"]


def read_attr(obj: object, name: str, expected: type | tuple[type, ...], default: Any) -> Any:
    """``obj``'s attribute ``name`` when it is of the ``expected`` type, else ``default``."""
    # A module's attributes are its __dict__: a missing one costs no AttributeError there.
    value = obj.__dict__.get(name, default) if type(obj) in MODULES else getattr(obj, name, default)
    if value is default:  # most often: not set
        return default
    return value if isinstance(value, expected) and not isinstance(value, property) else default


def _adapter_class(kind: Kind) -> type[Plugin]:
    hook = kind.hook

    def hook_method(self: _Adapter, first: Any, second: Any) -> Any:
        return self._loopai_call(first, second)

    namespace = {
        hook: hook_method,
        "__module__": __name__,
        "__doc__": f"A pluggy-style {hook} plugin.",
        "_handles_events": kind is WEBHOOK_HANDLER,
    }
    name = f"Hookimpl{kind.base.__name__}"
    return types.new_class(name, (_Adapter, kind.base), {}, lambda ns: ns.update(namespace))


_FOLLOWED: Final = ("enabled", "priority", "timeout", "supported_events", "max_retries")
_NAMES: Final = (list, tuple, str)
_DECLARED: Final[dict[str, type | tuple[type, ...]]] = {
    "requires_plugins": _NAMES,
    "run_before": _NAMES,
    "run_after": _NAMES,
    "isolation": str,
    "workers": int,
    "memory_limit_mb": int,
    "cpu_time_limit_s": (int, float),
}
"""What an adapter takes once from what it wraps, when set there: order, dependencies, isolation."""
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
        state["_enabled"] = read_attr(wraps, "enabled", bool, True)
        state["_priority"] = read_attr(wraps, "priority", int, 0)
        state["_timeout"] = read_attr(wraps, "timeout", (int, float), None)
        self.wraps = wraps
        self._loopai_call = call
        doc = getattr(wraps, "__doc__", None)
        self.description = read_attr(
            wraps, "description", str, doc.strip().split("\n")[0] if isinstance(doc, str) else ""
        )
        self.version = read_attr(wraps, "version", str, read_attr(wraps, "__version__", str, "0.0.0"))
        self.author = read_attr(wraps, "author", str, "")
        for attr, expected in _DECLARED.items():
            value = read_attr(wraps, attr, expected, None)
            if value is not None:
                setattr(self, attr, value)  # checked by the switch: a wrong value refuses the plugin
        if self._handles_events:
            events = getattr(wraps, "supported_events", None)
            if events is not None:
                self.supported_events = events
            self.max_retries = read_attr(wraps, "max_retries", int, None)

    def _loopai_follow(self, attr: str) -> None:
        """Take ``attr`` from the wrapped object again, as ``__init__`` did (the default when
        it has none, or one of the wrong type), and tell the registries that watch this plugin."""
        wraps = self.wraps
        if attr == "enabled":
            self.enabled = read_attr(wraps, "enabled", bool, True)
        elif attr == "priority":
            self.priority = read_attr(wraps, "priority", int, 0)
        elif attr == "timeout":
            self.timeout = read_attr(wraps, "timeout", (int, float), None)
        elif not isinstance(self, WebhookHandlerPlugin):
            return
        elif attr == "supported_events":
            events = getattr(wraps, "supported_events", None)
            self.supported_events = ALL_EVENTS if events is None else events
        elif attr == "max_retries":
            self.max_retries = read_attr(wraps, "max_retries", int, None)
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


MODULES: Final = (types.ModuleType, _PluginModule)
"""Module classes whose attributes are exactly their ``__dict__``."""


def _follow(module: types.ModuleType, attr: str) -> None:
    for ref in tuple(module.__dict__.get(_ADAPTERS_KEY, ())):
        adapter = ref()
        if adapter is not None:
            adapter._loopai_follow(attr)


def watch_module(face: Plugin) -> None:
    """Make a plain module that the adapter ``face`` wraps report changes of its switches to it."""
    assert isinstance(face, _Adapter)
    module = face.wraps
    if type(module) is types.ModuleType:
        module.__class__ = _PluginModule
    if type(module) is _PluginModule:
        # Append only (atomic): registries in other threads may add theirs at the same time.
        module.__dict__.setdefault(_ADAPTERS_KEY, []).append(weakref.ref(face))


_ADAPTERS: Final[dict[Kind, type[Plugin]]] = {kind: _adapter_class(kind) for kind in KINDS}


def adapter(kind: Kind, wraps: object, name: str, call: Callable[[Any, Any], Any]) -> Plugin:
    """The :class:`loopai.Plugin` face of ``wraps`` (a module or object) for ``kind``, calling ``call``."""
    made: Plugin = _ADAPTERS[kind](wraps, name, call)  # type: ignore[arg-type, call-arg]
    return made


def default_name(obj: object) -> str:
    """The name a module or object registers under: its ``name``, else its module or class name."""
    given = read_attr(obj, "name", str, "")
    if given:
        return str(given)
    if isinstance(obj, types.ModuleType):
        return obj.__name__.rsplit(".", 1)[-1].replace("_", "-")
    return kebab(type(obj).__name__)
